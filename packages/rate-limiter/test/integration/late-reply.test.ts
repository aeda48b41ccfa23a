import { once } from 'node:events';
import {
  awayFromWindowEdge,
  recordingLogger,
  startPrivateRedisOrSkip,
  startRedisCluster,
} from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type AlgorithmName,
  createRateLimiter,
  type FailMode,
  type RateLimitStore,
} from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const { redis, skip } = await startPrivateRedisOrSkip();

const deadlineMs = 50;
const pauseMs = 800;
const clients: Redis[] = [];
let prefixes = 0;

/**
 * A limiter on a fresh client and store: until its first reply a store knows nothing of the
 * server's clock, so its calls carry no expiry, and a call queued behind the pause runs (and
 * counts) once the pause ends, long after its caller's deadline: the reply comes late. The
 * client is connected first: a call made before the first connection is never sent once its
 * deadline has passed, so it would not be queued behind the pause.
 */
async function setup(failMode: FailMode, expectedInstances = 1, cluster?: Cluster) {
  const client = cluster ?? new Redis(redis!.url, recommendedRedisOptions);
  client.on('error', () => {});
  if (cluster === undefined) clients.push(client as Redis);
  if (cluster === undefined && client.status !== 'ready') await once(client, 'ready');
  prefixes += 1;
  const registry = new Registry();
  const logger = recordingLogger();
  const limiter = createRateLimiter({
    store: new RedisStore({ client, prefix: `late-${prefixes}:` }),
    limits: [{ limit: 10, windowMs: 3_600_000 }],
    failMode,
    expectedInstances,
    deadlineMs,
    // Every check is attempted, so each one's late reply is seen.
    breaker: { consecutiveFailures: 1_000_000 },
    localBlockCache: false,
    registry,
    logger,
  });
  const lateRefunds = async () =>
    (await registry.getSingleMetric('noa_rate_limiter_late_refunds_total')!.get()).values.reduce(
      (sum, value) => sum + value.value,
      0,
    );
  /** The key's remaining points once Redis answers again (a peek cut by the pause is retried). */
  const remainingAfterPause = async (key: string) => {
    let remaining = -1;
    await vi.waitFor(
      async () => {
        remaining = (await limiter.peek(key)).remaining;
      },
      { timeout: 5_000, interval: 50 },
    );
    return remaining;
  };
  return { limiter, logger, lateRefunds, remainingAfterPause };
}

/**
 * Runs `steps` with the private Redis frozen (SIGSTOP: calls wait in its socket, as behind a
 * CLIENT PAUSE), then thaws it: its replies come late by as long as the steps took, and no longer
 * than that (a fixed pause of 800 ms made each test wait it out).
 */
async function whileFrozen<T>(steps: () => Promise<T>): Promise<T> {
  redis!.freeze();
  try {
    return await steps();
  } finally {
    redis!.resume();
  }
}

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await redis?.stop();
});

describe.skipIf(skip !== undefined)('a check whose reply comes after its deadline', () => {
  // The remaining counts below are of the hour (Redis TIME, or Date.now for the local fallback: one
  // host, one clock) the test's first check opened: none starts within 15 s of an hour's end.
  beforeEach(async () => {
    await awayFromWindowEdge(3_600_000, 15_000);
  });

  it("failMode 'closed': the refused request Redis counted late is refunded, unawaited", async () => {
    const { limiter, logger, lateRefunds, remainingAfterPause } = await setup('closed');
    const { result, elapsedMs } = await whileFrozen(async () => {
      const started = performance.now();
      return { result: await limiter.check('k'), elapsedMs: performance.now() - started };
    });
    // The request path did not wait for the reply, nor for the refund (generous bound).
    expect(elapsedMs).toBeLessThan(deadlineMs + 400);
    expect(result).toMatchObject({ allowed: false, source: 'fail-mode' });
    await vi.waitFor(async () => expect(await lateRefunds()).toBe(1), { timeout: 5_000, interval: 50 });
    // Counted by the late script, then given back: the key is whole again.
    expect(await remainingAfterPause('k')).toBe(10);
    expect(logger.messages('debug')).toContain(
      'rate-limit check answered late after a fail-mode refusal; refunding its points',
    );
    await limiter.close();
  });

  it("failMode 'local': only the requests the local fallback refused are refunded", async () => {
    // The local share is 10 ÷ 10 = 1: the first check is admitted locally, the second refused.
    const { limiter, lateRefunds, remainingAfterPause } = await setup('local', 10);
    await whileFrozen(async () => {
      expect(await limiter.check('k')).toMatchObject({ allowed: true, source: 'fallback' });
      expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'fallback' });
    });
    await vi.waitFor(async () => expect(await lateRefunds()).toBe(1), { timeout: 5_000, interval: 50 });
    // Both counted late; the refused one given back, the admitted one (it went ahead) kept.
    expect(await remainingAfterPause('k')).toBe(9);
    await limiter.close();
  });

  it("failMode 'open': an admitted request stays counted, nothing is refunded", async () => {
    const { limiter, lateRefunds, remainingAfterPause } = await setup('open');
    await whileFrozen(async () => {
      expect(await limiter.check('k')).toMatchObject({ allowed: true, source: 'fail-mode' });
    });
    expect(await remainingAfterPause('k')).toBe(9);
    expect(await lateRefunds()).toBe(0);
    await limiter.close();
  });
});

describe.skipIf(skip !== undefined)('a late reply from one master of a Redis Cluster', () => {
  it("failMode 'closed': the keys of the paused master are refunded, the others' counts stand", async () => {
    const cluster = await startRedisCluster(3);
    const client = new Cluster(cluster.nodes, { ...recommendedRedisOptions, enableOfflineQueue: true });
    const admin = new Redis(cluster.nodes[0]!.port, cluster.nodes[0]!.host);
    try {
      const { limiter, lateRefunds, remainingAfterPause } = await setup('closed', 1, client);
      await client.ping();
      const keys = Array.from({ length: 24 }, (_, index) => `key-${index}`);
      await admin.call('CLIENT', 'PAUSE', String(pauseMs), 'ALL');
      // One tick: one batch, one write per master (consumeEach); the paused one answers late.
      const results = await Promise.all(keys.map((key) => limiter.check(key)));
      const late = keys.filter((_, index) => results[index]!.source === 'fail-mode');
      expect(late.length).toBeGreaterThan(0);
      expect(late.length).toBeLessThan(keys.length);
      for (const result of results) expect(result.allowed).toBe(result.source === 'store');
      await vi.waitFor(async () => expect(await lateRefunds()).toBe(late.length), {
        timeout: 5_000,
        interval: 50,
      });
      for (const key of keys) expect(await remainingAfterPause(key)).toBe(late.includes(key) ? 10 : 9);
      await limiter.close();
    } finally {
      admin.disconnect();
      await client.quit();
      await cluster.stop();
    }
  });
});

/**
 * A real RedisStore whose check replies are held until `release()`: what a busy event loop does
 * to a reply that Redis sent in time. Adjustments (the late refund, peeks) pass straight through.
 */
function heldRepliesStore(inner: RedisStore): RateLimitStore & { release(): void } {
  const held: (() => void)[] = [];
  return {
    kind: inner.kind,
    remote: true,
    async consume(key, limits, costs, block, options) {
      const outcomes = await inner.consume(key, limits, costs, block, options);
      await new Promise<void>((resolve) => held.push(resolve));
      return outcomes;
    },
    adjust: (key, limits, adjustment, block, options) =>
      inner.adjust(key, limits, adjustment, block, options),
    reset: (key) => inner.reset(key),
    close: async () => {},
    release: () => {
      for (const resolve of held.splice(0)) resolve();
    },
  };
}

/** Resolves 20 ms into the next window of `windowMs` (Redis runs on this host: one clock). */
const nextWindow = (windowMs: number) =>
  new Promise((resolve) => setTimeout(resolve, windowMs - (Date.now() % windowMs) + 20));

describe.skipIf(skip !== undefined)('a late reply whose window has ended', () => {
  // The sliding window still weighs the late point (about 0.98 of it at 20 ms into the next
  // window): a limit of 3 then leaves room for two admissions there, as 2 does for a fixed window.
  const cases: { algorithm: AlgorithmName; limit: number }[] = [
    { algorithm: 'fixed-window', limit: 2 },
    { algorithm: 'sliding-window', limit: 3 },
  ];
  it.each(cases)(
    '$algorithm: the refund does not take the points counted in the next window',
    async ({ algorithm, limit }) => {
      const windowMs = 1_000;
      const client = new Redis(redis!.url, recommendedRedisOptions);
      clients.push(client);
      const prefix = `late-window-${algorithm}:`;
      const store = heldRepliesStore(new RedisStore({ client, prefix }));
      const logger = recordingLogger();
      const options = {
        limits: [{ algorithm, limit, windowMs }],
        failMode: 'closed' as const,
        deadlineMs,
        breaker: { consecutiveFailures: 1_000_000 },
        localBlockCache: false,
        logger,
      };
      const late = createRateLimiter({ ...options, store });
      // Another instance on the same keys, whose replies are not held.
      const other = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      await nextWindow(windowMs);
      // Counted by Redis in this window; the reply is held past the deadline, so 'closed' refuses.
      expect(await late.check('k')).toMatchObject({ allowed: false, source: 'fail-mode' });
      await nextWindow(windowMs);
      // The next window fills up from the other instance.
      expect((await other.check('k')).allowed).toBe(true);
      expect((await other.check('k')).allowed).toBe(true);
      store.release();
      await vi.waitFor(
        () => expect(logger.messages().some((line) => line.includes('answered late'))).toBe(true),
        {
          timeout: 2_000,
          interval: 5,
        },
      );
      // One connection: any refund was sent before this check. The point counted in the previous
      // window must not come back out of this one, whose two admissions stand: it is full.
      expect((await other.check('k')).allowed).toBe(false);
      await late.close();
      await other.close();
    },
  );
});
