import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typecheckUserFile } from '@noa/testkit';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

// tsc over an Express user's file (test/types/express-user.ts), as a user compiles it: strict,
// nodenext, skipLibCheck false. `req.rateLimit` on Express's Request and `res.status()` in a
// refusal handler must type-check (they were TS2339).
it('an Express app using req.rateLimit and an Express-typed handler type-checks', () => {
  const checked = typecheckUserFile(path.join(here, 'types', 'express-user.ts'), { skipLibCheck: false });
  expect(checked.errors).toEqual([]);
  expect(checked.status).toBe(0);
}, 120_000);
