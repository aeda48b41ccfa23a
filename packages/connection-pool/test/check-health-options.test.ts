import { describe, expect, it } from 'vitest';
import { ConfigError, checkHealthOptionsSchema } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';
import { createPgPool } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';

// Nothing listens on port 1: bad options must be refused before anything is dialled.
const pools = [
  ['PgPool', () => createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa' })],
  ['RedisPool', () => createRedisPool({ redis: 'redis://127.0.0.1:1' })],
  ['MongoPool', () => createMongoPool({ url: 'mongodb://127.0.0.1:1/noa', serverSelectionTimeoutMs: 200 })],
] as const;

/** The pool's active health check, called with options as JavaScript may pass them. */
function check(pool: ReturnType<(typeof pools)[number][1]>, options: object): Promise<unknown> {
  const loose = options as { timeoutMs?: number };
  return 'checkHealth' in pool ? pool.checkHealth(loose) : pool.health(loose);
}

describe('the health check options (checkHealth(), MongoPool#health())', () => {
  it('default to a 500 ms timeout: below runHealthChecks’s 800 ms, so the pool’s own reason wins', () => {
    expect(checkHealthOptionsSchema.parse({}).timeoutMs).toBe(500);
  });

  it('reuse an answer for 1 s by default; 0 always asks', () => {
    expect(checkHealthOptionsSchema.parse({}).maxAgeMs).toBe(1_000);
    expect(checkHealthOptionsSchema.parse({ maxAgeMs: 0 }).maxAgeMs).toBe(0);
  });

  it.each(pools)(
    '%s: a bad or unknown option rejects with a ConfigError naming it',
    async (_name, create) => {
      const pool = create();
      try {
        for (const [options, field] of [
          [{ timeoutMs: 0 }, 'timeoutMs'],
          [{ timeoutMs: 2 ** 31 }, 'timeoutMs'],
          [{ timeoutMS: 100 }, 'timeoutMS'],
          [{ maxAgeMs: -1 }, 'maxAgeMs'],
        ] as const) {
          const error = await check(pool, options).catch((caught: unknown) => caught);
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).fields.join(' ')).toContain(field);
        }
      } finally {
        await pool.close();
      }
    },
  );
});
