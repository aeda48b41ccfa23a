import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgPool, type PgPool } from '../../src/pg.js';
import { createRedisPool } from '../../src/redis.js';
import { type PrivatePgCluster, privatePgSkipReason, startPrivatePgCluster } from './helpers/private-pg.js';
import { waitFor } from './helpers/wait.js';

/**
 * For checks this file does not test the deadline of: a first check connects, which on a loaded
 * machine can take longer than the default 500 ms.
 */
const patient = { timeoutMs: 5_000 };

const skip = privatePgSkipReason();
if (skip) console.log(skip);

describe.skipIf(skip !== undefined)('PgPool health() as a HealthReport (private primary + replica)', () => {
  let cluster: PrivatePgCluster;
  let pool: PgPool;

  beforeAll(async () => {
    cluster = await startPrivatePgCluster();
    pool = createPgPool({
      name: 'health_report',
      primary: cluster.primaryUrl,
      replicas: [cluster.replicaUrl],
      healthCheckIntervalMs: 100,
      connectTimeoutMs: 2_000,
      pool: { initialBackoffMs: 50, maxBackoffMs: 200 },
    });
  }, 120_000);

  afterAll(async () => {
    await pool?.close();
    await cluster?.destroy();
  });

  it('is up, degraded while the replica is stopped, down while the primary is killed, and up again', async () => {
    const up = await pool.checkHealth(patient);
    expect(up).toMatchObject({
      component: 'health_report',
      status: 'up',
      details: { primary: 'up', replicas: 1, replicasInRotation: 1 },
    });
    // The existing shape is still there.
    expect(up.primary).toMatchObject({ healthy: true, role: 'primary' });

    await cluster.stopReplica();
    await waitFor(async () => (await pool.checkHealth()).status === 'degraded', 15_000);
    expect(pool.health()).toMatchObject({ details: { primary: 'up', replicasInRotation: 0 } });
    expect(pool.health().cause).toBeInstanceOf(Error);
    await cluster.startReplica();
    await waitFor(async () => (await pool.checkHealth()).status === 'up', 30_000);

    await cluster.killPrimary();
    await waitFor(async () => (await pool.checkHealth(patient)).status === 'down', 15_000);
    const down = pool.health();
    expect(down.details).toMatchObject({ primary: 'down' });
    expect(down.cause).toMatchObject({ code: 'NOA_POOL_BACKEND_UNAVAILABLE' });
    expect(down.primary).toMatchObject({ healthy: false, reason: 'down' });

    await cluster.startPrimary();
    await waitFor(async () => (await pool.checkHealth()).status === 'up', 60_000);
    expect(pool.health()).not.toHaveProperty('cause');
  }, 180_000);
});

describe('RedisPool health() as a HealthReport (private redis-server)', () => {
  let server: PrivateRedis | undefined;
  let redisSkip: string | undefined;
  beforeAll(async () => {
    server = await startPrivateRedis().catch((error: Error) => {
      redisSkip = error.message;
      return undefined;
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('goes down with the cause while the server is killed, and up once it is back', async (context) => {
    if (server === undefined) return context.skip(`no private redis-server: ${redisSkip}`);
    const pool = createRedisPool({
      name: 'health_redis',
      redis: server.url,
      connectTimeoutMs: 1_000,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
    });
    try {
      expect(await pool.checkHealth(patient)).toMatchObject({
        component: 'health_redis',
        status: 'up',
        healthy: true,
      });
      await server.kill();
      await waitFor(async () => (await pool.checkHealth(patient)).status === 'down', 15_000);
      expect(pool.health()).toMatchObject({ status: 'down', healthy: false, details: { reason: 'down' } });
      expect(pool.health().cause).toMatchObject({ code: 'NOA_POOL_BACKEND_UNAVAILABLE' });
      await server.restart();
      await waitFor(async () => (await pool.checkHealth(patient)).status === 'up', 15_000);
    } finally {
      await pool.close();
    }
    expect(pool.health().status).toBe('down');
  });
});
