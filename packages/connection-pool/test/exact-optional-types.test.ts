import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typecheckUserFile } from '@noa/testkit';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

// tsc over a user's file (test/types/exact-optional-user.ts) compiled with
// `exactOptionalPropertyTypes: true`, which strict codebases turn on: an optional option must take
// `undefined` too (`createPgPool({ primary, replicas: config.replicas })`, `db.connect({ signal:
// request.signal })`), as the zod-typed options and the runtime checks do. Only the user's file is
// judged: the package's own sources are compiled under the workspace's settings.
it('options whose values may be undefined type-check under exactOptionalPropertyTypes', () => {
  const checked = typecheckUserFile(path.join(here, 'types', 'exact-optional-user.ts'), {
    exactOptionalPropertyTypes: true,
  });
  expect(checked.errors).toEqual([]);
  // tsc ran (a crash or a missing file reports no line of the user's file either).
  expect(checked.setupErrors).toEqual([]);
}, 120_000);
