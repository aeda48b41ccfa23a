import { commandStat, startPrivateRedisOrSkip, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type FailMode,
  type HealthStatus,
  type RateLimiter,
  type RateLimitStore,
} from '../../src/index.js';
import { RedisStore, recommendedClusterOptions, recommendedRedisOptions } from '../../src/redis.js';

// checkHealth() asks the store: an idle limiter's health() reads `up` while its Redis is frozen or gone.
const single = await startPrivateRedisOrSkip();
const cluster = await startRedisClusterOrSkip(3);

/** Generous bound on a check's answer beyond its timeoutMs (a loaded 2-core machine). */
const MARGIN_MS = 1_500;
const TIMEOUT_MS = 300;

/** The PINGs `node` has served so far. */
const pings = async (node: Redis) => (await commandStat(node, 'ping')).calls;

/** checkHealth() (fresh each time) until it says `status`; gives up after 20 s. */
async function checkUntil(limiter: RateLimiter, status: HealthStatus): Promise<void> {
  const giveUp = Date.now() + 20_000;
  for (;;) {
    const report = await limiter.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
    if (report.status === status) return;
    if (Date.now() > giveUp) throw new Error(`checkHealth stayed ${report.status}, wanted ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.skipIf(single.skip !== undefined)('RateLimiter.checkHealth() on a private Redis', () => {
  const server = single.redis!;
  const admin = new Redis(server.url);
  admin.on('error', () => {});
  const clients: Redis[] = [];
  const limiters: RateLimiter[] = [];
  const limiterOn = (failMode: FailMode): RateLimiter => {
    const client = new Redis(server.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
    client.on('error', () => {});
    clients.push(client);
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      prefix: `check-health-${failMode}`,
      limits: [{ limit: 1_000, windowMs: 60_000 }],
      failMode,
      deadlineMs: 200,
    });
    limiters.push(limiter);
    return limiter;
  };
  afterAll(async () => {
    server.resume();
    for (const limiter of limiters) await limiter.close();
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server.stop();
  });

  it('frozen (SIGSTOP): the fail mode’s verdict within timeoutMs, with NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT; up once resumed', async () => {
    const local = limiterOn('local');
    const closed = limiterOn('closed');
    await checkUntil(local, 'up');
    await checkUntil(closed, 'up');
    server.freeze();
    try {
      // What the passive report says of an idle limiter: nothing has failed.
      expect(local.health().status).toBe('up');
      const started = Date.now();
      const [degraded, down] = await Promise.all([
        local.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 }),
        closed.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 }),
      ]);
      expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
      expect(degraded).toMatchObject({
        status: 'degraded',
        details: { probe: 'timeout', breaker: 'closed' },
      });
      expect(down).toMatchObject({ status: 'down', details: { probe: 'timeout' } });
      expect(degraded.cause).toMatchObject({
        code: 'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT',
        details: { timeoutMs: TIMEOUT_MS },
      });
      // The PING does not feed the breaker: traffic still goes to the store.
      expect(local.health().details).toMatchObject({ breaker: 'closed' });
    } finally {
      server.resume();
    }
    await checkUntil(local, 'up');
    await checkUntil(closed, 'up');
  });

  it('killed: degraded within timeoutMs with the connection error; up once it is back', async () => {
    const limiter = limiterOn('local');
    await checkUntil(limiter, 'up');
    await server.kill();
    const started = Date.now();
    await checkUntil(limiter, 'degraded');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    const report = await limiter.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
    expect(report).toMatchObject({ status: 'degraded', details: { probe: 'failed' } });
    expect(report.cause).toBeInstanceOf(Error);
    await server.restart();
    await checkUntil(limiter, 'up');
    expect(await limiter.checkHealth({ maxAgeMs: 0 })).not.toHaveProperty('cause');
  });

  it('concurrent checks send one PING; a recent answer sends none', async () => {
    const limiter = limiterOn('local');
    await checkUntil(limiter, 'up');
    const before = await pings(admin);
    const reports = await Promise.all(Array.from({ length: 10 }, () => limiter.checkHealth({ maxAgeMs: 0 })));
    expect(reports.map((report) => report.status)).toEqual(Array(10).fill('up'));
    await limiter.checkHealth();
    expect((await pings(admin)) - before).toBe(1);
  });

  it('memory store: up without a call; closed: down; a remote store without ping(): the passive report', async () => {
    const memory = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    expect(await memory.checkHealth()).toMatchObject({ status: 'up', details: { store: 'memory' } });
    await memory.close();
    expect(await memory.checkHealth()).toMatchObject({ status: 'down' });

    const redisStore = new RedisStore({ client: clients[0]! });
    // A custom remote store that cannot be asked: the store's calls, without ping().
    const custom: RateLimitStore = {
      kind: 'custom',
      remote: true,
      consume: (...args) => redisStore.consume(...args),
      reset: (key) => redisStore.reset(key),
      close: async () => {},
    };
    const unaskable = createRateLimiter({ store: custom, limits: [{ limit: 1, windowMs: 1_000 }] });
    limiters.push(unaskable);
    expect(await unaskable.checkHealth()).toMatchObject({ status: 'up', details: { probe: 'unsupported' } });
  });

  it('bad options reject with a ConfigError naming the field', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await expect(limiter.checkHealth({ maxAgeMs: -1 })).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
      fields: ['maxAgeMs'],
    });
    await limiter.close();
  });
});

describe.skipIf(cluster.skip !== undefined)('RateLimiter.checkHealth() on a private Redis Cluster', () => {
  const nodes = cluster.cluster?.nodes ?? [];
  const admins = nodes.map((node) => new Redis(node.port, node.host));
  afterAll(async () => {
    for (const admin of admins) admin.disconnect();
    await cluster.cluster?.stop();
  });

  it('PINGs every master once; one master paused makes it the fail mode’s verdict', async () => {
    const client = new Cluster(nodes, recommendedClusterOptions);
    client.on('error', () => {});
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      prefix: 'check-health-cluster',
      limits: [{ limit: 1_000, windowMs: 60_000 }],
      failMode: 'closed',
    });
    try {
      await checkUntil(limiter, 'up');
      const before = await Promise.all(admins.map(pings));
      expect((await limiter.checkHealth({ maxAgeMs: 0 })).status).toBe('up');
      const after = await Promise.all(admins.map(pings));
      expect(after.map((count, index) => count - before[index]!)).toEqual([1, 1, 1]);

      await admins[2]!.client('PAUSE', '1500', 'ALL');
      const report = await limiter.checkHealth({ timeoutMs: TIMEOUT_MS, maxAgeMs: 0 });
      expect(report).toMatchObject({ status: 'down', details: { probe: 'timeout' } });
      await checkUntil(limiter, 'up');
    } finally {
      await limiter.close();
      client.disconnect();
    }
  });
});
