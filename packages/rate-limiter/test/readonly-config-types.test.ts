import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typecheckUserFile } from '@noa/testkit';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

// tsc over a user's file (test/types/readonly-config-user.ts) that passes `as const` and readonly
// arrays as `limits`, `roles`, `allow` and `deny`. Only the user's file is judged.
it('readonly arrays are accepted wherever the options take a list', () => {
  const checked = typecheckUserFile(path.join(here, 'types', 'readonly-config-user.ts'), {});
  expect(checked.errors).toEqual([]);
  expect(checked.setupErrors).toEqual([]);
}, 120_000);
