import { describe, expect, it, vi } from 'vitest';
import { createMongoPool } from '../src/mongo.js';
import { createPgPool } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';
import { refusedSqlPools } from './refused-pools.js';

// The drivers are installed here and the servers refuse connections (port 1): an outage, which
// health() must tell from a missing driver package (driver-missing.test.ts).
async function fails(attempt: () => Promise<unknown>): Promise<void> {
  await expect(attempt()).rejects.toThrow();
}

describe('health() of a pool whose server refuses connections', () => {
  it.each(refusedSqlPools)(
    '%s: says the primary and the replica are unreachable, with the error callers get',
    async (_name, create) => {
      const db = create();
      try {
        await fails(() => db.query('INSERT INTO t VALUES (1)'));
        await vi.waitFor(() => expect(db.health().replicas[0]!.reason).toBe('down'));
        const { primary, replicas } = db.health();
        expect(primary).toMatchObject({
          healthy: false,
          reason: 'down',
          errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
        });
        expect(primary.error).toContain('backend unavailable');
        expect(replicas[0]).toMatchObject({
          healthy: false,
          reason: 'down',
          errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
        });
      } finally {
        await db.close();
      }
    },
  );

  it('a healthy server has no error', async () => {
    const db = createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa' });
    try {
      expect(db.health().primary).toMatchObject({ healthy: true, reason: undefined });
      expect(db.health().primary.errorCode).toBeUndefined();
      expect(db.health().primary.error).toBeUndefined();
    } finally {
      await db.close();
    }
  });

  it('RedisPool', async () => {
    const redis = createRedisPool({ redis: 'redis://127.0.0.1:1', connectTimeoutMs: 500 });
    try {
      await fails(() => redis.use(async (client) => client.ping()));
      expect(redis.health()).toMatchObject({
        healthy: false,
        reason: 'down',
        errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
      });
    } finally {
      await redis.close();
    }
  });

  it('MongoPool', async () => {
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/noa', serverSelectionTimeoutMs: 200 });
    try {
      // Past the default 500 ms on a loaded machine, the check reports its own timeout instead.
      expect(await mongo.health({ timeoutMs: 5_000 })).toMatchObject({
        healthy: false,
        errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
      });
    } finally {
      await mongo.close();
    }
    expect(await mongo.health()).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_CLOSED' });
  });
});
