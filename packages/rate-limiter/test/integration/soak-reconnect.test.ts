import { activeResources, listenerCounts, liveObjects, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ClosedError, createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

/**
 * A long-running process in a few seconds: thousands of checks and acquires over many reconnect
 * cycles of a private Redis (its connections killed, the server paused past the deadline), then
 * what must not grow: listeners on the client (ioredis users report one more per reconnect until
 * Node's MaxListenersExceededWarning), objects kept alive (promises of answers nobody waits
 * for), the acquire queues, and timers after `close()`.
 */

const { redis, skip } = await startPrivateRedisOrSkip();

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const giveUp = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.skipIf(skip !== undefined)('a Redis limiter over many reconnects (soak)', () => {
  const admin = new Redis(redis?.url ?? 'redis://127.0.0.1:1', { lazyConnect: true });
  afterAll(async () => {
    admin.disconnect();
    await redis?.stop();
  });

  function clientOf(): Redis {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 20 });
    client.on('error', () => {});
    return client;
  }

  function limiterOn(client: Redis, prefix: string): RateLimiter {
    return createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [{ limit: 5, windowMs: 2_000 }],
      failMode: 'local',
      deadlineMs: 200,
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 50 },
    });
  }

  /** One cycle: checks over fresh keys, acquires on a tight key, then the client's connection killed. */
  async function cycle(limiter: RateLimiter, client: Redis, round: number): Promise<void> {
    const checks: Promise<unknown>[] = [];
    for (let index = 0; index < 200; index += 1) checks.push(limiter.check(`k${round}-${index % 50}`));
    for (let index = 0; index < 8; index += 1)
      checks.push(limiter.acquire(`tight${round}`, { timeoutMs: 30 }).catch(() => 'refused'));
    await Promise.all(checks);
    // Every few rounds the server stalls past the deadline: checks answered by the fail mode, the
    // breaker opened and probed, the late replies arrive after their callers left.
    if (round % 3 === 2) {
      await admin.call('CLIENT', 'PAUSE', '400', 'ALL');
      await Promise.all(Array.from({ length: 50 }, (_, index) => limiter.check(`p${round}-${index}`)));
      // The breaker probes when a check comes after halfOpenAfterMs.
      await until(() => {
        void limiter.check('probe');
        return !limiter.fallbackActive;
      }, 'the breaker to close again');
    }
    // Not events.once: it rejects on the 'error' (ECONNRESET) that comes first.
    const reconnected = new Promise((resolve) => client.once('ready', resolve));
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await reconnected;
  }

  it('keeps listeners, live promises and acquire queues flat; close() leaves no timer', async () => {
    await admin.connect();
    const before = activeResources();
    const client = clientOf();
    await new Promise((resolve) => client.once('ready', resolve));
    const limiter = limiterOn(client, 'soak:');
    await cycle(limiter, client, 0);
    const baseListeners = listenerCounts(client);
    const basePromises = liveObjects(Promise);
    for (let round = 1; round <= 12; round += 1) await cycle(limiter, client, round);
    expect(listenerCounts(client)).toEqual(baseListeners);
    expect(limiter.waitingKeys).toBe(0);
    // 2,500 checks and acquires since the baseline: one promise kept per call, or per reconnect,
    // would show far above this bound.
    expect(liveObjects(Promise) - basePromises).toBeLessThan(300);
    await limiter.close();
    client.disconnect();
    await until(
      () => (activeResources().Timeout ?? 0) <= (before.Timeout ?? 0),
      `timers back to ${before.Timeout ?? 0}: ${JSON.stringify(activeResources())}`,
    );
    expect(activeResources().Timeout ?? 0).toBeLessThanOrEqual(before.Timeout ?? 0);
  }, 30_000);

  it('close() while checks and acquires wait on a frozen Redis: every promise settles, no timer stays', async () => {
    const before = activeResources();
    const client = clientOf();
    await new Promise((resolve) => client.once('ready', resolve));
    const limiter = limiterOn(client, 'soak-frozen:');
    // A key refused until the window ends, so acquires queue behind its head.
    for (let index = 0; index < 6; index += 1) await limiter.check('held');
    redis!.freeze();
    try {
      const checks = Array.from({ length: 100 }, (_, index) => limiter.check(`f${index}`));
      const acquires = Array.from({ length: 10 }, (_, index) =>
        limiter.acquire(index % 2 === 0 ? 'held' : `a${index}`, { timeoutMs: 60_000 }),
      );
      // Wait until the checks are sent and waiting on the frozen server.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const closing = limiter.close();
      const settled = await Promise.allSettled([...checks, ...acquires, closing]);
      expect(settled.every((one) => one.status !== undefined)).toBe(true);
      const rejected = settled.filter((one) => one.status === 'rejected') as PromiseRejectedResult[];
      for (const one of rejected) expect(one.reason).toBeInstanceOf(ClosedError);
      expect(limiter.waitingKeys).toBe(0);
    } finally {
      redis!.resume();
    }
    client.disconnect();
    await until(
      () => (activeResources().Timeout ?? 0) <= (before.Timeout ?? 0),
      `timers back to ${before.Timeout ?? 0}: ${JSON.stringify(activeResources())}`,
    );
  }, 30_000);

  it('a Redis frozen with its connection open: the breaker’s probes do not pile PINGs up on the connection', async () => {
    const client = clientOf();
    await new Promise((resolve) => client.once('ready', resolve));
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'soak-probes:' }),
      limits: [{ limit: 100, windowMs: 2_000 }],
      failMode: 'local',
      deadlineMs: 30,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 40 },
    });
    await limiter.check('warm');
    // ioredis keeps each command sent until its answer or the connection's end: a SIGSTOPped
    // server (a hung process, a VM paused) keeps the connection, so nothing ends them.
    const unanswered = () => (client as unknown as { commandQueue: { length: number } }).commandQueue.length;
    redis!.freeze();
    try {
      // Checks keep coming: the breaker opens, then probes every halfOpenAfterMs (a day of a
      // default 1 s probe is 86,400 PINGs kept, with the promises and closures waiting on them).
      let probesDue = 0;
      const stopAt = performance.now() + 1_000;
      while (performance.now() < stopAt) {
        await Promise.all(Array.from({ length: 10 }, (_, index) => limiter.check(`k${index}`)));
        await new Promise((resolve) => setTimeout(resolve, 20));
        probesDue += 1;
      }
      expect(limiter.fallbackActive).toBe(true);
      // The checks sent before the breaker opened, and one PING.
      expect(unanswered()).toBeLessThanOrEqual(3 + 1);
      expect(probesDue).toBeGreaterThan(10);
    } finally {
      redis!.resume();
    }
    await until(() => {
      void limiter.check('probe');
      return !limiter.fallbackActive;
    }, 'the breaker to close once Redis answers again');
    await limiter.close();
    client.disconnect();
  }, 20_000);
});
