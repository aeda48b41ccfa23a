import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typecheckUserFile } from '@noa/testkit';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

// tsc over the file of a user migrating from @fastify/rate-limit with both plugins installed
// (test/types/fastify-beside-user.mts), strict and skipLibCheck false as a user compiles it. Both
// plugins augment `fastify`: @fastify/rate-limit's `FastifyContextConfig.rateLimit` and ours were
// TS2717 ("Subsequent property declarations must have the same type"), and its
// `fastify.rateLimit({ max })` did not type-check. `@fastify/rate-limit` is not installed: its
// declarations are reproduced in test/types/fastify-rate-limit.d.cts.
it('@noa/rate-limiter/fastify-own-names and @fastify/rate-limit type-check in one program', () => {
  const checked = typecheckUserFile(path.join(here, 'types', 'fastify-beside-user.mts'), {
    skipLibCheck: false,
    paths: { '@fastify/rate-limit': [path.join(here, 'types', 'fastify-rate-limit.d.cts')] },
  });
  expect(checked.setupErrors).toEqual([]);
  expect(checked.errors).toEqual([]);
  expect(checked.status).toBe(0);
}, 120_000);

// The same check for `@noa/rate-limiter/fastify` without @fastify/rate-limit
// (test/types/fastify-user.ts): its users' `config.rateLimit` and `fastify.rateLimit()` type-check
// as before the second entry.
it('@noa/rate-limiter/fastify keeps config.rateLimit and fastify.rateLimit() for its users', () => {
  const checked = typecheckUserFile(path.join(here, 'types', 'fastify-user.ts'), { skipLibCheck: false });
  expect(checked.setupErrors).toEqual([]);
  expect(checked.errors).toEqual([]);
  expect(checked.status).toBe(0);
}, 120_000);
