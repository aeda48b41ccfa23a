import {
  commandStat,
  type PrivateRedisCluster,
  startPrivateRedisOrSkip,
  startPrivateSentinelOrSkip,
  startRedisClusterOrSkip,
} from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type HealthStatus } from '../../src/index.js';

// checkHealth() asks Redis: an idle cache's health() reads `up` while its Redis is frozen or gone.
const single = await startPrivateRedisOrSkip();
const cluster = await startRedisClusterOrSkip(3);
const sentinel = await startPrivateSentinelOrSkip();

/** Generous bound on a check's answer beyond its timeoutMs (a loaded 2-core machine). */
const MARGIN_MS = 1_500;
const TIMEOUT_MS = 300;

/** The PINGs `node` has served so far. */
const pings = async (node: Redis) => (await commandStat(node, 'ping')).calls;

/** checkHealth() (fresh each time) until it says `status`; gives up after 20 s. */
async function checkUntil(cache: Cache, status: HealthStatus): Promise<void> {
  const giveUp = Date.now() + 20_000;
  for (;;) {
    const report = await cache.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
    if (report.status === status) return;
    if (Date.now() > giveUp) throw new Error(`checkHealth stayed ${report.status}, wanted ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(single.skip !== undefined)('Cache.checkHealth() on a private Redis', () => {
  const server = single.redis!;
  const admin = new Redis(server.url);
  admin.on('error', () => {});
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  const open = async (onBackendError: 'degrade' | 'throw'): Promise<Cache> => {
    const redis = new Redis(server.url, { retryStrategy: () => 100 });
    redis.on('error', () => {});
    clients.push(redis);
    const cache = new Cache({
      redis,
      prefix: `check-health-${onBackendError}:`,
      bus: false,
      onBackendError,
      // Longer than the check's timeoutMs: a frozen server is the check's timeout, not the PING's.
      operationTimeoutMs: 2_000,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  afterAll(async () => {
    server.resume();
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server.stop();
  });

  it('frozen (SIGSTOP): degraded (down when set to throw) within timeoutMs, with NOA_CACHE_HEALTH_CHECK_TIMEOUT; up once resumed', async () => {
    const degrading = await open('degrade');
    const throwing = await open('throw');
    expect(await degrading.checkHealth()).toMatchObject({ status: 'up', details: { probe: 'answered' } });
    server.freeze();
    try {
      // What the passive report says of an idle cache: nothing has failed.
      expect(degrading.health().status).toBe('up');
      const started = Date.now();
      const [degraded, down] = await Promise.all([
        degrading.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 }),
        throwing.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 }),
      ]);
      expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
      expect(degraded).toMatchObject({
        status: 'degraded',
        details: { probe: 'timeout', l2Answering: false },
      });
      expect(down).toMatchObject({ status: 'down', details: { probe: 'timeout' } });
      expect(degraded.cause).toMatchObject({
        code: 'NOA_CACHE_HEALTH_CHECK_TIMEOUT',
        details: { timeoutMs: TIMEOUT_MS },
      });
    } finally {
      server.resume();
    }
    await checkUntil(degrading, 'up');
    await checkUntil(throwing, 'up');
  });

  it('killed: degraded within timeoutMs with the connection error; up once it is back', async () => {
    const cache = await open('degrade');
    await checkUntil(cache, 'up');
    await server.kill();
    const started = Date.now();
    // The client may not have seen the close yet: the first check can be a PING that fails.
    await checkUntil(cache, 'degraded');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    const report = await cache.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
    expect(report).toMatchObject({ status: 'degraded', details: { l2Answering: false } });
    expect(report.cause).toBeInstanceOf(Error);
    await server.restart();
    await checkUntil(cache, 'up');
    expect(await cache.checkHealth({ maxAgeMs: 0 })).not.toHaveProperty('cause');
  });

  it('concurrent checks, from the cache and its namespaces, send one PING; a recent answer sends none', async () => {
    const cache = await open('degrade');
    const other = cache.namespace('other');
    await checkUntil(cache, 'up');
    const before = await pings(admin);
    const reports = await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 ? other : cache).checkHealth({ maxAgeMs: 0 })),
    );
    expect(reports.map((report) => report.status)).toEqual(Array(10).fill('up'));
    // Within maxAgeMs (default 1 s): the answer above, no PING.
    await cache.checkHealth();
    expect((await pings(admin)) - before).toBe(1);
  });

  it('memory-only: up without I/O; closed: down', async () => {
    const memory = new Cache({});
    expect(await memory.checkHealth()).toMatchObject({ status: 'up', details: { l2: 'none' } });
    await memory.close();
    expect(await memory.checkHealth()).toMatchObject({ status: 'down' });
    const closing = await open('degrade');
    await closing.close();
    expect(await closing.checkHealth({ maxAgeMs: 0 })).toMatchObject({ status: 'down' });
  });

  it('bad options reject with a ConfigError naming the field', async () => {
    const cache = new Cache({});
    await expect(cache.checkHealth({ timeoutMs: 0 })).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
      fields: ['timeoutMs'],
    });
    await cache.close();
  });
});

describe.skipIf(cluster.skip !== undefined)('Cache.checkHealth() on a private Redis Cluster', () => {
  const { nodes } = cluster.cluster ?? ({ nodes: [] } as unknown as PrivateRedisCluster);
  const admins = nodes.map((node) => new Redis(node.port, node.host));
  afterAll(async () => {
    for (const admin of admins) admin.disconnect();
    await cluster.cluster?.stop();
  });

  it('PINGs every master once; one master paused makes it degraded', async () => {
    const client = new Cluster(nodes, { clusterRetryStrategy: () => 100 });
    client.on('error', () => {});
    const cache = new Cache({
      redis: client,
      prefix: 'check-health-cluster:',
      bus: false,
      operationTimeoutMs: 2_000,
    });
    try {
      await cache.ready();
      await checkUntil(cache, 'up');
      const before = await Promise.all(admins.map(pings));
      expect((await cache.checkHealth({ maxAgeMs: 0 })).status).toBe('up');
      const after = await Promise.all(admins.map(pings));
      expect(after.map((count, index) => count - before[index]!)).toEqual([1, 1, 1]);

      await admins[1]!.client('PAUSE', '1500', 'ALL');
      const report = await cache.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
      expect(report).toMatchObject({ status: 'degraded', details: { probe: 'timeout' } });
      await checkUntil(cache, 'up');
    } finally {
      await cache.close();
      client.disconnect();
    }
  });
});

describe.skipIf(sentinel.skip !== undefined)('Cache.checkHealth() through Redis Sentinel', () => {
  const { sentinel: managed } = sentinel;
  afterAll(async () => {
    await managed?.stop();
  });

  it('PINGs the current master, before and after a failover', async () => {
    const client = managed!.client({ failoverDetector: true });
    const cache = new Cache({ redis: client, prefix: 'check-health-sentinel:', bus: false });
    const admins: Redis[] = [];
    const node = (port: number) => {
      const admin = new Redis(port, '127.0.0.1');
      admin.on('error', () => {});
      admins.push(admin);
      return admin;
    };
    try {
      await cache.ready();
      await checkUntil(cache, 'up');
      for (let round = 0; round < 2; round += 1) {
        if (round === 1) {
          await managed!.failover();
          await checkUntil(cache, 'up');
        }
        const master = node(await managed!.masterPort());
        const before = await pings(master);
        expect((await cache.checkHealth({ maxAgeMs: 0 })).status).toBe('up');
        expect((await pings(master)) - before).toBe(1);
      }
    } finally {
      await cache.close();
      client.disconnect();
      for (const admin of admins) admin.disconnect();
    }
  });
});
