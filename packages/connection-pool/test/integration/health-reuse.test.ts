import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import type { Client } from 'pg';
import { describe, expect, it } from 'vitest';
import { SqlCluster } from '../../src/index.js';
import { createMongoPool } from '../../src/mongo.js';
import { pgDriver } from '../../src/pg.js';
import { createRedisPool } from '../../src/redis.js';

// Readiness endpoints are polled often, by several callers (kubelet, load balancers, dashboards):
// each pool's active health check shares one probe between concurrent calls and returns an answer
// younger than `maxAgeMs` again, instead of pinging the server on every call.

/** A long reuse window, so that no assertion here depends on how fast the machine is. */
const reuse = { maxAgeMs: 60_000 };

const mongoUrl = serviceUrl('mongo');
const mongoUp = await isReachable('mongo');
const pgUrl = serviceUrl('postgres');
const pgUp = await isReachable('postgres');

describe('health checks ping once for many callers', () => {
  it.skipIf(!mongoUp)(
    'MongoPool#health(): concurrent calls share one ping, a recent answer is reused',
    async () => {
      const url = new URL(mongoUrl);
      url.pathname = `/${uniqueName('cp_health_reuse')}`;
      const pool = createMongoPool({
        url: url.toString(),
        name: 'reuse',
        driverOptions: { monitorCommands: true },
      });
      try {
        const client = await pool.connect();
        let pings = 0;
        client.on('commandStarted', (event) => {
          if (event.commandName === 'ping') pings += 1;
        });
        const concurrent = await Promise.all(Array.from({ length: 5 }, () => pool.health()));
        expect(pings).toBe(1);
        expect(concurrent.every((health) => health.healthy)).toBe(true);

        const first = await pool.health(reuse);
        for (let call = 0; call < 5; call += 1) {
          // The same answer, as it was read: `checkedAt` says how old it is.
          expect((await pool.health(reuse)).checkedAt).toBe(first.checkedAt);
        }
        expect(pings).toBeLessThanOrEqual(2);
        const before = pings;
        expect((await pool.health({ maxAgeMs: 0 })).healthy).toBe(true);
        expect(pings).toBe(before + 1);
      } finally {
        await pool.close();
      }
      // A closed pool says so at once, whatever was answered before.
      expect(await pool.health(reuse)).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_CLOSED' });
    },
  );

  it('RedisPool#checkHealth(): a recent answer is reused (private redis-server, PINGs counted by the server)', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, name: 'reuse' });
    const pingCalls = async () =>
      pool.use(async (client) => {
        const stats = await client.info('commandstats');
        return Number(/cmdstat_ping:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      });
    try {
      const before = await pingCalls();
      const first = await pool.checkHealth(reuse);
      expect(first.healthy).toBe(true);
      await Promise.all(Array.from({ length: 5 }, () => pool.checkHealth(reuse)));
      for (let call = 0; call < 5; call += 1)
        expect((await pool.checkHealth(reuse)).checkedAt).toBe(first.checkedAt);
      expect((await pingCalls()) - before).toBe(1);
      await pool.checkHealth({ maxAgeMs: 0 });
      expect((await pingCalls()) - before).toBe(2);
    } finally {
      await pool.close();
      await server.stop();
    }
  });

  it.skipIf(!pgUp)('SqlCluster#checkHealth() (Postgres): a recent answer is reused', async () => {
    let pings = 0;
    const counting = {
      ...pgDriver,
      ping: (client: Client) => {
        pings += 1;
        return pgDriver.ping(client);
      },
    };
    const db = new SqlCluster(counting, { name: 'reuse', primary: pgUrl });
    try {
      const first = await db.checkHealth(reuse);
      expect(first.status).toBe('up');
      await Promise.all(Array.from({ length: 5 }, () => db.checkHealth(reuse)));
      for (let call = 0; call < 5; call += 1)
        expect((await db.checkHealth(reuse)).checkedAt).toBe(first.checkedAt);
      expect(pings).toBe(1);
      await db.checkHealth({ maxAgeMs: 0 });
      expect(pings).toBe(2);
    } finally {
      await db.close();
    }
  });
});
