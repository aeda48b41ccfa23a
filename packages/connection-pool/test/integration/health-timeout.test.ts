import { runHealthChecks } from '@noa/core';
import {
  isReachable,
  type PrivatePostgres,
  serviceUrl,
  startPrivatePostgres,
  startPrivateRedis,
  startTcpProxy,
} from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { HealthCheckTimeoutError } from '../../src/index.js';
import { createMongoPool } from '../../src/mongo.js';
import { createMysqlPool } from '../../src/mysql.js';
import { createPgPool } from '../../src/pg.js';
import { createRedisPool } from '../../src/redis.js';
import { privateFerretdbSkipReason, startPrivateFerretdb } from './helpers/private-ferretdb.js';
import { privatePgSkipReason, startPrivatePgCluster } from './helpers/private-pg.js';
import { waitFor } from './helpers/wait.js';

// A readiness probe against a hung server must answer `down` with the pool's own reason within
// the check's `timeoutMs`, not wait for the pool's connect deadline (10 s here, longer than
// core's `runHealthChecks` timeout), which left only core's anonymous TimeoutError.
const connectTimeoutMs = 10_000;
const timeoutMs = 300;
/** Generous for 2 loaded cores, and far below `connectTimeoutMs`. */
const answeredWithin = timeoutMs + 3_000;

/** Asserts the report is `down` for a check that timed out, with the typed cause. */
function expectTimedOut(report: { status: string; cause?: unknown }): void {
  expect(report.status).toBe('down');
  expect(report.cause).toBeInstanceOf(HealthCheckTimeoutError);
  expect(report.cause).toMatchObject({ code: 'NOA_POOL_HEALTH_CHECK_TIMEOUT', details: { timeoutMs } });
}

const mysqlUrl = serviceUrl('mysql');
const mysqlReachable = await isReachable('mysql');

describe('checkHealth({ timeoutMs }) of a pool whose server is frozen', () => {
  it('RedisPool (private redis-server, SIGSTOP)', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, name: 'frozen-redis', connectTimeoutMs });
    try {
      expect(await pool.use((client) => client.ping())).toBe('PONG');
      server.freeze();
      try {
        const started = Date.now();
        const health = await pool.checkHealth({ timeoutMs, maxAgeMs: 0 });
        expect(Date.now() - started).toBeLessThan(answeredWithin);
        expectTimedOut(health);
        expect(health).toMatchObject({
          component: 'frozen-redis',
          healthy: false,
          reason: 'unresponsive',
          errorCode: 'NOA_POOL_HEALTH_CHECK_TIMEOUT',
        });
        expect(health.error).toMatch(/frozen-redis: health check got no answer within 300 ms/);
        // With core's defaults (800 ms) the pool's default timeout answers first, with its reason.
        const service = await runHealthChecks({ redis: () => pool.checkHealth({ maxAgeMs: 0 }) });
        expect(service.ready).toBe(false);
        expect(service.components.redis?.cause).toBeInstanceOf(HealthCheckTimeoutError);
      } finally {
        server.resume();
      }
      await waitFor(async () => (await pool.checkHealth({ maxAgeMs: 0 })).healthy, 15_000);
    } finally {
      await pool.close();
      await server.stop();
    }
  });

  const pgSkip = privatePgSkipReason();
  it.skipIf(pgSkip !== undefined)('PgPool (private Postgres, SIGSTOP)', async () => {
    let server: PrivatePostgres | undefined;
    server = await startPrivatePostgres();
    const pool = createPgPool({ name: 'frozen-pg', primary: server.url, connectTimeoutMs });
    try {
      await pool.query('SELECT 1');
      server.freeze();
      try {
        const started = Date.now();
        const health = await pool.checkHealth({ timeoutMs, maxAgeMs: 0 });
        expect(Date.now() - started).toBeLessThan(answeredWithin);
        expectTimedOut(health);
        expect(health.primary).toMatchObject({
          healthy: false,
          reason: 'unresponsive',
          errorCode: 'NOA_POOL_HEALTH_CHECK_TIMEOUT',
        });
        const service = await runHealthChecks({ db: () => pool.checkHealth({ maxAgeMs: 0 }) });
        expect(service.components.db?.cause).toBeInstanceOf(HealthCheckTimeoutError);
      } finally {
        server.resume();
      }
      await waitFor(async () => (await pool.checkHealth({ maxAgeMs: 0 })).status === 'up', 15_000);
    } finally {
      await pool.close();
      await server?.destroy();
      server = undefined;
    }
  });

  it.skipIf(pgSkip !== undefined)(
    'PgPool with a frozen replica: degraded, the replica unresponsive (private Postgres pair)',
    async () => {
      const cluster = await startPrivatePgCluster();
      const pool = createPgPool({
        name: 'frozen-replica',
        primary: cluster.primaryUrl,
        replicas: [cluster.replicaUrl],
        connectTimeoutMs,
      });
      try {
        await waitFor(async () => (await pool.checkHealth({ maxAgeMs: 0 })).status === 'up', 15_000);
        await cluster.freezeReplica();
        try {
          const started = Date.now();
          const health = await pool.checkHealth({ timeoutMs, maxAgeMs: 0 });
          expect(Date.now() - started).toBeLessThan(answeredWithin);
          expect(health.status).toBe('degraded');
          expect(health.cause).toBeInstanceOf(HealthCheckTimeoutError);
          expect(health.primary.healthy).toBe(true);
          expect(health.replicas[0]).toMatchObject({
            healthy: false,
            reason: 'unresponsive',
            errorCode: 'NOA_POOL_HEALTH_CHECK_TIMEOUT',
          });
        } finally {
          await cluster.thawReplica();
        }
      } finally {
        await pool.close();
        await cluster.destroy();
      }
    },
  );

  it.skipIf(!mysqlReachable)('MysqlPool (shared MariaDB behind a frozen TCP proxy)', async () => {
    const proxy = await startTcpProxy({
      host: new URL(mysqlUrl).hostname,
      port: Number(new URL(mysqlUrl).port) || 3306,
    });
    const proxied = new URL(mysqlUrl);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    const pool = createMysqlPool({ name: 'frozen-mysql', primary: proxied.toString(), connectTimeoutMs });
    try {
      await pool.query('SELECT 1');
      proxy.freeze();
      try {
        const started = Date.now();
        const health = await pool.checkHealth({ timeoutMs, maxAgeMs: 0 });
        expect(Date.now() - started).toBeLessThan(answeredWithin);
        expectTimedOut(health);
        expect(health.primary).toMatchObject({ healthy: false, reason: 'unresponsive' });
      } finally {
        proxy.thaw();
      }
      await waitFor(async () => (await pool.checkHealth({ maxAgeMs: 0 })).status === 'up', 15_000);
    } finally {
      await pool.close();
      await proxy.close();
    }
  });

  const mongoSkip = privateFerretdbSkipReason();
  it.skipIf(mongoSkip !== undefined)('MongoPool (private FerretDB, SIGSTOP)', async () => {
    const server = await startPrivateFerretdb('health_timeout');
    const pool = createMongoPool({
      name: 'frozen-mongo',
      url: server.url,
      serverSelectionTimeoutMs: connectTimeoutMs,
    });
    try {
      expect((await pool.health({ timeoutMs: 5_000 })).healthy).toBe(true);
      await server.freeze();
      try {
        const started = Date.now();
        const health = await pool.health({ timeoutMs, maxAgeMs: 0 });
        expect(Date.now() - started).toBeLessThan(answeredWithin);
        expectTimedOut(health);
        expect(health).toMatchObject({ healthy: false, errorCode: 'NOA_POOL_HEALTH_CHECK_TIMEOUT' });
      } finally {
        server.resume();
      }
      await waitFor(async () => (await pool.health({ maxAgeMs: 0 })).healthy, 15_000);
    } finally {
      await pool.close();
      await server.stop();
    }
  });
});
