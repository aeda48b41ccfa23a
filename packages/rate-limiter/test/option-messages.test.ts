import { describe, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { createRateLimiter } from '../src/index.js';
import { RedisStore } from '../src/redis.js';

// The schemas give core's parseOptions what it composes into "expected …, got …": literal unions
// it can list, and custom schemas whose message names what they take.

const limits = [{ limit: 1, windowMs: 1_000 }];
const limiter = createRateLimiter({ limits });

const cases: [string, () => unknown, string][] = [
  [
    "keyBy 'IP'",
    () => expressRateLimit({ limiter, keyBy: 'IP' as never }),
    "keyBy: expected one of 'ip', 'user', 'api-key' or a function, got 'IP'",
  ],
  ['role 5', () => expressRateLimit({ limiter, role: 5 as never }), 'role: expected a function, got 5'],
  [
    'handler 1',
    () => expressRateLimit({ limiter, handler: 1 as never }),
    'handler: expected a function, got 1',
  ],
  [
    'limiter {}',
    () => expressRateLimit({ limiter: {} as never }),
    'limiter: expected a RateLimiter (createRateLimiter()), got an object',
  ],
  [
    'a role limit without windowMs',
    () => createRateLimiter({ limits, roles: { admin: [{ limit: 5 } as never] } }),
    'roles.admin.0.windowMs: required (expected a number)',
  ],
  [
    "a role rule 'x'",
    () => createRateLimiter({ limits, roles: { admin: 'x' as never } }),
    "roles.admin: expected an array or 'unlimited', got 'x'",
  ],
  [
    'a role rule of 17 limits',
    () =>
      createRateLimiter({
        limits,
        roles: {
          pro: Array.from({ length: 17 }, (_, index) => ({ name: `l${index}`, limit: 1, windowMs: 1_000 })),
        },
      }),
    'roles.pro: give at most 16 limits per rule, got 17',
  ],
  [
    'store {}',
    () => createRateLimiter({ limits, store: {} as never }),
    'store: expected a RateLimitStore (MemoryStore, RedisStore), got an object',
  ],
  [
    'a Redis client {}',
    () => new RedisStore({ client: {} as never }),
    'client: expected an ioredis Redis or Cluster instance, got an object',
  ],
];

describe('option messages', () => {
  for (const [what, make, message] of cases)
    it(`${what}: ${message}`, () => {
      let caught: unknown;
      try {
        make();
      } catch (error) {
        caught = error;
      }
      // `Invalid <component> options: <field>: <message>`
      expect((caught as Error | undefined)?.message.split(' options: ')[1]).toBe(message);
    });
});
