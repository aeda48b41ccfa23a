import { ClosedError } from '@noa/core';
import { isReachable, serviceUrl, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import {
  AcquireError,
  type AlgorithmName,
  createRateLimiter,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { privateRedisConnections, targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const limit = 3;
const windowMs = 600;
const waiters = 8;

describe.skipIf(skip !== undefined).each(targets)('limiter.acquire on $name', (target) => {
  const connection = targetConnection(target);

  function limiterOn(algorithm: AlgorithmName, registry?: Registry) {
    return createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rlacq')}:` }),
      limits: [{ algorithm, limit, windowMs }],
      // About the queue, not the deadline: a slow machine must not send checks to the fail mode.
      deadlineMs: 5_000,
      registry,
    });
  }

  // Each case waits out some three windows on its own limiter and prefix: they run side by side.
  it.concurrent.each<AlgorithmName>([
    'fixed-window',
    'sliding-window',
    'sliding-log',
    'token-bucket',
    'leaky-bucket',
  ])(
    '%s: admits every waiter in FIFO order, at most the limit per window, the head alone checking',
    async (algorithm) => {
      const registry = new Registry();
      const limiter = limiterOn(algorithm, registry);
      const admitted: { index: number; at: number; result: RateLimitResult }[] = [];
      await Promise.all(
        Array.from({ length: waiters }, (_, index) =>
          limiter.acquire('key', { timeoutMs: 30_000 }).then((result) => {
            admitted.push({ index, at: performance.now(), result });
          }),
        ),
      );
      expect(admitted.map((entry) => entry.index)).toEqual(
        Array.from({ length: waiters }, (_, index) => index),
      );
      if (algorithm === 'fixed-window') {
        // Windows told apart by the store's own count, not by local time (a reply handled late on a
        // loaded machine put an admission in the next window's group): in FIFO order on one key,
        // an admission's rank in its window is limit - remaining, and a window starts at rank 1.
        // Ranks within a window are consecutive (no check consumed without being admitted) and
        // never above the limit.
        let run = 0;
        for (const { result } of admitted) {
          const rank = limit - (result.remaining ?? Number.NaN);
          run = rank === 1 ? 1 : run + 1;
          expect(rank).toBe(run);
          expect(run).toBeLessThanOrEqual(limit);
        }
      }
      const data = await registry.getSingleMetric('noa_rate_limiter_checks_total')!.get();
      const refused = data.values
        .filter((value) => value.labels.result !== 'allowed')
        .reduce((sum, value) => sum + value.value, 0);
      // At most one refusal per admission (per window for a fixed window), not one per waiter.
      expect(refused).toBeLessThanOrEqual(
        algorithm === 'fixed-window' ? Math.ceil(waiters / limit) + 1 : waiters,
      );
      expect(limiter.waitingKeys).toBe(0);
      await limiter.close();
    },
  );

  it('rejects at once a key blocked for longer than the timeout', async () => {
    const limiter = limiterOn('fixed-window');
    await limiter.block('b', 60_000);
    const error = await limiter.acquire('b', { timeoutMs: 2_000 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AcquireError);
    expect(error).toMatchObject({ reason: 'blocked' });
    // One round trip, not the timeout (a generous bound: the machine is shared).
    expect((error as AcquireError).waitedMs).toBeLessThan(1_000);
    expect((error as AcquireError).retryAfterMs).toBeGreaterThan(55_000);
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it('wakes a waiter when the key is unblocked, instead of sleeping until the block would end', async () => {
    const limiter = limiterOn('fixed-window');
    await limiter.block('u', 60_000);
    let admitted: RateLimitResult | undefined;
    const waiting = limiter.acquire('u', { timeoutMs: 120_000 }).then((result) => {
      admitted = result;
    });
    // Queued: its check answered 'blocked' (it would sleep until the block's end) or is in flight.
    expect(limiter.waitingKeys).toBe(1);
    await limiter.unblock('u');
    await vi.waitFor(() => expect(admitted).toMatchObject({ allowed: true, source: 'store' }), {
      timeout: 5_000,
    });
    await waiting;
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });
});

const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)('limiter.acquire while Redis is paused', () => {
  const { client } = privateRedisConnections(privateRedis.redis);

  it('times out while the head check is in flight, and gives the late admission back', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      registry,
      store: new RedisStore({ client, prefix: 'acquire-pause:' }),
      limits: [{ limit: 5, windowMs: 60_000 }],
      // The check waits out the pause, so its admission arrives after the caller left.
      deadlineMs: 10_000,
    });
    // Loads both scripts first, so that no NOSCRIPT retry reorders the calls after the pause.
    await limiter.peek('k');
    await limiter.check('warm');
    await privateRedis.redis!.pause(1_000);
    const error = await limiter.acquire('k', { timeoutMs: 200 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AcquireError);
    expect(error).toMatchObject({ key: 'k', reason: 'timeout' });
    // A deadline test: generous bounds, never past the timeout by more than a timer's delay.
    expect((error as AcquireError).waitedMs).toBeGreaterThanOrEqual(199);
    expect((error as AcquireError).waitedMs).toBeLessThan(900);
    // After the pause the check is counted, then refunded: the key is back to its full quota.
    await vi.waitFor(async () => expect((await limiter.peek('k')).remaining).toBe(5), {
      timeout: 5_000,
      interval: 50,
    });
    expect(await registry.metrics()).toContain(
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="refund"} 1',
    );
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it("failMode 'closed' while Redis is unreachable: a waiter that cannot outlast the retry is rejected as 'unavailable', not 'limited'", async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'acquire-down:' }),
      limits: [{ limit: 5, windowMs: 60_000 }],
      failMode: 'closed',
      deadlineMs: 100,
    });
    await limiter.check('warm');
    await privateRedis.redis!.pause(1_000);
    const error = await limiter.acquire('k', { timeoutMs: 500 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AcquireError);
    expect(error).toMatchObject({ key: 'k', reason: 'unavailable', retryAfterMs: 1_000 });
    expect(String((error as AcquireError).message)).toContain('the store is unreachable');
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it("close() after the caller's timeout passed (its timer not run yet: the process was busy) rejects with 'timeout', not ClosedError", async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'acquire-close-late:' }),
      limits: [{ limit: 5, windowMs: 60_000 }],
      deadlineMs: 10_000,
    });
    await limiter.peek('k');
    await limiter.check('warm');
    await privateRedis.redis!.pause(1_000);
    const late = limiter.acquire('k', { timeoutMs: 100 }).catch((caught: unknown) => caught);
    const within = limiter.acquire('j', { timeoutMs: 60_000 }).catch((caught: unknown) => caught);
    // The head checks are in flight (Redis paused); the process is busy past the first timeout.
    await new Promise((resolve) => setImmediate(resolve));
    const busyUntil = performance.now() + 250;
    while (performance.now() < busyUntil);
    await limiter.close();
    expect(await late).toBeInstanceOf(AcquireError);
    expect(await late).toMatchObject({ key: 'k', reason: 'timeout' });
    expect(await within).toBeInstanceOf(ClosedError);
  });

  it('gives back an admission that arrives after close(), on the shared store', async () => {
    const options = {
      store: new RedisStore({ client, prefix: 'acquire-close:' }),
      limits: [{ limit: 5, windowMs: 60_000 }],
      deadlineMs: 10_000,
    };
    const limiter = createRateLimiter(options);
    await limiter.peek('k');
    await limiter.check('warm');
    await privateRedis.redis!.pause(1_000);
    const waiting = limiter.acquire('k', { timeoutMs: 10_000 }).catch((caught: unknown) => caught);
    // Checks of a tick go out together at its end: then the head's is in flight (Redis paused).
    await new Promise((resolve) => setImmediate(resolve));
    await limiter.close();
    expect(await waiting).toBeInstanceOf(ClosedError);
    // Redis counts the check after the pause; nobody took that slot, so it comes back.
    const other = createRateLimiter(options);
    await vi.waitFor(async () => expect((await other.peek('k')).remaining).toBe(5), {
      timeout: 5_000,
      interval: 50,
    });
    await other.close();
  });
});
