import { type PrivatePostgres, startPrivatePostgres } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgPool } from '../../src/pg.js';
import { createRedisPool } from '../../src/redis.js';
import { privatePgSkipReason } from './helpers/private-pg.js';
import { waitFor } from './helpers/wait.js';

/**
 * For checks this file does not test the deadline of: a first check connects, which on a loaded
 * machine can take longer than the default 500 ms.
 */
const patient = { timeoutMs: 5_000 };

const skip = privatePgSkipReason();
if (skip) console.log(skip);

describe.skipIf(skip !== undefined)(
  'checkHealth(): a readiness probe that asks the server (private Postgres)',
  () => {
    let server: PrivatePostgres;

    beforeAll(async () => {
      server = await startPrivatePostgres();
    });

    afterAll(async () => {
      await server?.destroy();
    });

    it('says down at startup while the server is down, and healthy once it is back, with no traffic', async () => {
      await server.stop();
      const pool = createPgPool({
        primary: server.url,
        connectTimeoutMs: 2_000,
        pool: { initialBackoffMs: 50, maxBackoffMs: 200 },
      });
      try {
        // What traffic last saw: nothing yet.
        expect(pool.health().primary.healthy).toBe(true);
        const down = await pool.checkHealth(patient);
        expect(down.primary).toMatchObject({
          healthy: false,
          reason: 'down',
          errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
        });
        expect(down.primary.error).toMatch(/ECONNREFUSED/);
        expect(pool.health().primary.healthy).toBe(false);

        await server.start();
        // Within the connect backoff (here at most 200 ms), without a single query.
        await waitFor(async () => (await pool.checkHealth()).primary.healthy, 10_000);
        expect(pool.health().primary).toMatchObject({ healthy: true, reason: undefined });
      } finally {
        await pool.close();
      }
    });

    it('a healthy server: checkHealth() leaves its probe connection idle for the next query', async () => {
      const pool = createPgPool({ primary: server.url });
      try {
        expect((await pool.checkHealth(patient)).primary.healthy).toBe(true);
        expect(pool.health().primary.stats).toMatchObject({ active: 0, idle: 1 });
      } finally {
        await pool.close();
      }
    });
  },
);

describe('RedisPool#checkHealth()', () => {
  it('says down at startup when nothing listens', async () => {
    // The probe waits for its connection at most connectTimeoutMs: a refused connect is quick,
    // but a loaded machine can stall the event loop past 1 s, and a wait that ends before the
    // refusal is seen reports nothing (still healthy, as before the first connect).
    const pool = createRedisPool({ redis: 'redis://127.0.0.1:1', connectTimeoutMs: 4_000 });
    try {
      expect(pool.health().healthy).toBe(true);
      const health = await pool.checkHealth(patient);
      expect(health).toMatchObject({
        healthy: false,
        reason: 'down',
        errorCode: 'NOA_POOL_BACKEND_UNAVAILABLE',
      });
      expect(health.error).toMatch(/ECONNREFUSED/);
    } finally {
      await pool.close();
    }
  });
});
