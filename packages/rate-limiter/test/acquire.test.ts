import { ClosedError, ConfigError } from '@noa/core';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import {
  AcquireError,
  type AlgorithmName,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
} from '../src/index.js';
import { rejectionOf } from './acquire-rejection.js';
import { useAcquireFakeTimers } from './fake-timers.js';

const start = 1_700_000_000_000;
/** Date.now(), which the fake timers move: timers and the limiter's clock agree. */
const clock = { now: () => Date.now() };

function limiterOf(options: Omit<RateLimiterOptions, 'clock'>): RateLimiter {
  return createRateLimiter({ ...options, clock });
}

/** Counts the settled state of a promise without awaiting it. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  // The test reads the rejection later; this keeps it from being reported as unhandled meanwhile.
  tracked.catch(() => {});
  return { settled: () => done, promise: tracked };
}

/** The sum of a metric's values over all its labels. */
async function metricSum(registry: Registry, name: string): Promise<number> {
  const data = await registry.getSingleMetric(name)!.get();
  return data.values.reduce((sum, value) => sum + value.value, 0);
}

describe('limiter.acquire on the memory store', () => {
  useAcquireFakeTimers(start);

  it('waits for the window to reset and resolves with the admitting result', async () => {
    const limiter = limiterOf({ limits: [{ limit: 2, windowMs: 1_000 }] });
    await limiter.acquire('k');
    await limiter.acquire('k');
    const third = track(limiter.acquire('k', { timeoutMs: 5_000 }));
    await vi.advanceTimersByTimeAsync(999);
    expect(third.settled()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const result = await third.promise;
    expect(result).toMatchObject({ allowed: true, outcome: 'allowed', remaining: 1 });
    expect(Date.now() - start).toBe(1_000);
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('rejects at once when the refusal outlasts the timeout, naming key, wait and reason', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 60_000 }] });
    await limiter.acquire('k');
    const error = await rejectionOf(limiter.acquire('k', { timeoutMs: 1_000 }));
    expect(error).toMatchObject({
      code: 'NOA_RATE_LIMIT_ACQUIRE',
      key: 'k',
      reason: 'limited',
      waitedMs: 0,
      // The fixed window is aligned to the epoch: it ends this far after `start`.
      retryAfterMs: 60_000 - (start % 60_000),
    });
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('rejects a deny-listed IP, a blocked key and a cost over the capacity at once', async () => {
    const limiter = limiterOf({
      limits: [{ limit: 5, windowMs: 1_000 }],
      deny: ['10.0.0.0/8'],
      allow: ['192.168.1.1'],
      autoBlock: { violations: 1, withinMs: 1_000, blockMs: 60_000 },
    });
    const denied = await rejectionOf(limiter.acquire({ key: 'a', ip: '10.1.2.3' }));
    // A deny-listed IP is never admitted: never, as for a cost over the capacity, not "retry now".
    expect(denied).toMatchObject({ reason: 'denied', retryAfterMs: Number.POSITIVE_INFINITY });
    expect(JSON.parse(JSON.stringify(denied))).not.toHaveProperty('retryAfterMs');
    expect(denied.details).not.toHaveProperty('retryAfterMs');
    expect((await limiter.acquire({ key: 'a', ip: '192.168.1.1', cost: 100 })).outcome).toBe('allowlisted');
    expect((await rejectionOf(limiter.acquire({ key: 'a', cost: 6 }))).reason).toBe('exceeds-capacity');
    await limiter.block('b', 30_000);
    const blocked = await rejectionOf(limiter.acquire('b', { timeoutMs: 10_000 }));
    expect(blocked).toMatchObject({ reason: 'blocked', retryAfterMs: 30_000 });
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it('tells a waiter behind the head at once when the head goes first past its deadline', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.acquire('k');
    const head = track(limiter.acquire('k', { timeoutMs: 5_000 }));
    await vi.advanceTimersByTimeAsync(0);
    // The next slot is the head's, in 1 s: 500 ms cannot be enough.
    expect(await rejectionOf(limiter.acquire('k', { timeoutMs: 500 }))).toMatchObject({
      reason: 'limited',
      waitedMs: 0,
    });
    const second = track(limiter.acquire('k', { timeoutMs: 1_500 }));
    await vi.advanceTimersByTimeAsync(1_000);
    expect((await head.promise).allowed).toBe(true);
    // At 1 s the head took the slot; the next is at 2 s, after this waiter's deadline (1.5 s).
    expect(await rejectionOf(second.promise)).toMatchObject({ reason: 'limited', waitedMs: 1_000 });
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('rejects at once a key auto-blocked for longer than the timeout', async () => {
    const limiter = limiterOf({
      limits: [{ limit: 1, windowMs: 1_000 }],
      autoBlock: { violations: 2, withinMs: 10_000, blockMs: 60_000 },
    });
    await limiter.check('abuser');
    await limiter.check('abuser');
    expect((await limiter.check('abuser')).retryAfterMs).toBe(60_000);
    const error = await rejectionOf(limiter.acquire('abuser', { timeoutMs: 30_000 }));
    expect(error).toMatchObject({ reason: 'blocked', waitedMs: 0, retryAfterMs: 60_000 });
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('waits out a block shorter than the timeout', async () => {
    const limiter = limiterOf({
      limits: [{ limit: 5, windowMs: 1_000 }],
      autoBlock: { violations: 10, withinMs: 1_000, blockMs: 60_000 },
    });
    await limiter.block('b', 2_000);
    const waiting = track(limiter.acquire('b', { timeoutMs: 5_000 }));
    await vi.advanceTimersByTimeAsync(2_000);
    expect((await waiting.promise).allowed).toBe(true);
    await limiter.close();
  });

  it('wakes the waiters when their key is unblocked, reset or refunded, instead of sleeping out the old refusal', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 60_000 }] });
    await limiter.block('b', 60_000);
    const unblocked = track(limiter.acquire('b', { timeoutMs: 120_000 }));
    await vi.advanceTimersByTimeAsync(10);
    await limiter.unblock('b');
    // A newcomer is judged by the key as it is now, not by the lifted block.
    const newcomer = track(limiter.acquire('b', { timeoutMs: 120_000 }));
    await vi.advanceTimersByTimeAsync(0);
    expect(unblocked.settled()).toBe(true);
    expect(await unblocked.promise).toMatchObject({ allowed: true });
    expect(newcomer.settled()).toBe(false);
    await limiter.reset('b');
    await vi.advanceTimersByTimeAsync(0);
    expect(newcomer.settled()).toBe(true);
    expect(await newcomer.promise).toMatchObject({ allowed: true });
    const refunded = track(limiter.acquire('b', { timeoutMs: 120_000 }));
    await vi.advanceTimersByTimeAsync(0);
    expect(refunded.settled()).toBe(false);
    await limiter.refund('b');
    await vi.advanceTimersByTimeAsync(0);
    expect(refunded.settled()).toBe(true);
    expect(await refunded.promise).toMatchObject({ allowed: true });
    // Unblocked while the head's check (answered 'blocked') is in flight: asked again, admitted.
    await limiter.block('c', 60_000);
    const inFlight = track(limiter.acquire('c', { timeoutMs: 120_000 }));
    await limiter.unblock('c');
    await vi.advanceTimersByTimeAsync(0);
    expect(inFlight.settled()).toBe(true);
    expect(Date.now() - start).toBe(10);
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await limiter.close();
  });

  it('rejects the waiters at once when their key is blocked for longer than they can wait', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.acquire('k');
    const waiting = track(limiter.acquire('k', { timeoutMs: 30_000 }));
    await vi.advanceTimersByTimeAsync(10);
    await limiter.block('k', 60_000);
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting.settled()).toBe(true);
    expect(await rejectionOf(waiting.promise)).toMatchObject({ reason: 'blocked', waitedMs: 10 });
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it("waits out a queueing leaky bucket's delay before resolving, never past the timeout", async () => {
    const limiter = limiterOf({
      limits: [{ algorithm: 'leaky-bucket', limit: 1, windowMs: 1_000, queueMaxDelayMs: 5_000 }],
    });
    // Admitted at once with delays of 0, 1, 2 and 3 s: the caller may go when acquire resolves.
    const waiters = Array.from({ length: 4 }, () => track(limiter.acquire('q', { timeoutMs: 2_500 })));
    await vi.advanceTimersByTimeAsync(0);
    expect(waiters.map((waiter) => waiter.settled())).toEqual([true, false, false, true]);
    // A 3 s delay ends after the 2.5 s timeout: rejected at once, and its slot given back.
    expect(await rejectionOf(waiters[3]!.promise)).toMatchObject({ reason: 'limited', retryAfterMs: 3_000 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(waiters[1]!.settled()).toBe(true);
    expect(await waiters[1]!.promise).toMatchObject({ allowed: true, delayMs: 1_000 });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(waiters[2]!.settled()).toBe(true);
    // The given-back slot (3 s) is the next one: 1 s after this caller arrives, not 2 s.
    const next = track(limiter.acquire('q', { timeoutMs: 2_500 }));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(next.settled()).toBe(true);
    // A caller aborted during its delay leaves, and its slot is given back too.
    const controller = new AbortController();
    const aborted = track(limiter.acquire('q', { signal: controller.signal }));
    await vi.advanceTimersByTimeAsync(500);
    controller.abort();
    expect((await rejectionOf(aborted.promise)).reason).toBe('aborted');
    // Its slot (4 s) is free again: the next caller goes 500 ms later, not 1.5 s.
    const last = track(limiter.acquire('q'));
    await vi.advanceTimersByTimeAsync(500);
    expect(last.settled()).toBe(true);
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // close() ends a caller waiting out its delay too, and its timer.
    const delayed = track(limiter.acquire('q'));
    await vi.advanceTimersByTimeAsync(0);
    expect(delayed.settled()).toBe(false);
    await limiter.close();
    await expect(delayed.promise).rejects.toBeInstanceOf(ClosedError);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('admits a cost above the burst that the queueing leaky bucket admits with a delay', async () => {
    const limiter = limiterOf({
      limits: [{ algorithm: 'leaky-bucket', limit: 1, windowMs: 1_000, queueMaxDelayMs: 5_000 }],
    });
    // check() admits 3 points on an empty bucket of burst 1, after 2 s: acquire waits for them.
    const waiting = track(limiter.acquire({ key: 'big', cost: 3 }, { timeoutMs: 10_000 }));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(waiting.settled()).toBe(true);
    expect(await waiting.promise).toMatchObject({ allowed: true, delayMs: 2_000 });
    // 7 points would need 6 s of queue, over queueMaxDelayMs: no wait can admit them.
    expect(await rejectionOf(limiter.acquire({ key: 'huge', cost: 7 }))).toMatchObject({
      reason: 'exceeds-capacity',
      waitedMs: 0,
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
    await limiter.close();
  });

  it('honours an abort at once and removes the waiter', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.acquire('k');
    const controller = new AbortController();
    const first = track(limiter.acquire('k', { signal: controller.signal }));
    const second = track(limiter.acquire('k'));
    await vi.advanceTimersByTimeAsync(100);
    controller.abort(new Error('user left'));
    const error = await rejectionOf(first.promise);
    expect(error).toMatchObject({ reason: 'aborted', waitedMs: 100 });
    expect((error.cause as Error).message).toBe('user left');
    // The next in line is admitted at the reset, as if the aborted caller had never queued.
    await vi.advanceTimersByTimeAsync(900);
    expect((await second.promise).allowed).toBe(true);
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // An already aborted signal is refused before queueing.
    expect((await rejectionOf(limiter.acquire('k', { signal: AbortSignal.abort() }))).reason).toBe('aborted');
    await limiter.close();
  });

  it('bounds the queue per key', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.acquire('k');
    const waiting = [
      track(limiter.acquire('k', { maxQueue: 2 })),
      track(limiter.acquire('k', { maxQueue: 2 })),
    ];
    await vi.advanceTimersByTimeAsync(0);
    const error = await rejectionOf(limiter.acquire('k', { maxQueue: 2 }));
    expect(error).toMatchObject({ reason: 'queue-full', key: 'k', retryAfterMs: 1_000 });
    // Another key has its own queue.
    expect((await limiter.acquire('other', { maxQueue: 2 })).allowed).toBe(true);
    await vi.advanceTimersByTimeAsync(2_000);
    for (const waiter of waiting) expect((await waiter.promise).allowed).toBe(true);
    await limiter.close();
  });

  it('rejects waiters with ClosedError on close() and leaves no timer', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.acquire('k');
    await limiter.acquire('j');
    const waiting = [track(limiter.acquire('k')), track(limiter.acquire('j', { timeoutMs: 60_000 }))];
    await vi.advanceTimersByTimeAsync(10);
    expect(limiter.waitingKeys).toBe(2);
    await limiter.close();
    for (const waiter of waiting) await expect(waiter.promise).rejects.toBeInstanceOf(ClosedError);
    expect(limiter.waitingKeys).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    await expect(limiter.acquire('k')).rejects.toBeInstanceOf(ClosedError);
  });

  it('validates its options and the cost', async () => {
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await expect(limiter.acquire('k', { timeoutMs: -1 })).rejects.toBeInstanceOf(ConfigError);
    // Past a timer's range (2³¹ - 1 ms, about 24.8 days) Node would fire it at once: a 40-day
    // timeout must be refused, not turned into an immediate 'timeout'.
    await expect(limiter.acquire('k', { timeoutMs: 40 * 86_400_000 })).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringContaining('timeoutMs'),
    });
    expect((await limiter.acquire('k', { timeoutMs: 2 ** 31 - 1 })).allowed).toBe(true);
    await expect(limiter.acquire({ key: 'k', cost: 1.5 })).rejects.toMatchObject({
      code: 'NOA_RATE_LIMIT_INVALID_COST',
    });
    await limiter.close();
  });

  it('records waiters and wait times', async () => {
    const registry = new Registry();
    const limiter = limiterOf({ limits: [{ limit: 1, windowMs: 1_000 }], registry });
    await limiter.acquire('k');
    const waiting = track(limiter.acquire('k'));
    await vi.advanceTimersByTimeAsync(10);
    expect(await metricSum(registry, 'noa_rate_limiter_acquire_waiters')).toBe(1);
    await vi.advanceTimersByTimeAsync(990);
    await waiting.promise;
    expect(await metricSum(registry, 'noa_rate_limiter_acquire_waiters')).toBe(0);
    const text = await registry.metrics();
    expect(text).toContain(
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="acquired"} 2',
    );
    expect(text).toContain(
      'noa_rate_limiter_acquire_wait_seconds_sum{limiter="limiter",result="acquired"} 1',
    );
    await limiter.close();
  });

  const algorithmArb = fc.constantFrom<AlgorithmName>(
    'fixed-window',
    'sliding-window',
    'sliding-log',
    'token-bucket',
    'leaky-bucket',
  );

  it('admits at most L per window, in FIFO order, with one store call per retry (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        algorithmArb,
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 100, max: 2_000 }),
        fc.integer({ min: 1, max: 25 }),
        fc.integer({ min: 0, max: 999 }),
        async (algorithm, limit, windowMs, waiters, offset) => {
          vi.setSystemTime(start + offset);
          const registry = new Registry();
          const limiter = limiterOf({ limits: [{ algorithm, limit, windowMs }], registry });
          const admitted: { index: number; at: number }[] = [];
          const calls = Array.from({ length: waiters }, (_, index) =>
            limiter.acquire('key', { timeoutMs: 1_000_000 }).then(() => {
              admitted.push({ index, at: Date.now() });
            }),
          );
          // A sliding window of limit 1 admits one request per two windows at worst.
          await vi.advanceTimersByTimeAsync((2 * waiters + 2) * windowMs);
          await Promise.all(calls);
          expect(admitted.map((entry) => entry.index)).toEqual(calls.map((_, index) => index));
          for (const entry of admitted) {
            // Every window of windowMs ending at an admission (sliding), or aligned (fixed window).
            // Fixed and sliding windows bound each aligned window; the others every sliding one.
            const aligned = algorithm === 'fixed-window' || algorithm === 'sliding-window';
            const inWindow = admitted.filter((other) =>
              aligned
                ? Math.floor(other.at / windowMs) === Math.floor(entry.at / windowMs)
                : other.at <= entry.at && other.at > entry.at - windowMs,
            );
            // Buckets refill (leak) continuously: L at once plus what refilled over the window.
            const allowed = algorithm === 'token-bucket' || algorithm === 'leaky-bucket' ? 2 * limit : limit;
            expect(inWindow.length).toBeLessThanOrEqual(allowed);
          }
          const checks = await metricSum(registry, 'noa_rate_limiter_checks_total');
          const refused = checks - waiters;
          // Only the head checks, after the refusal's retry time: at most one refusal per admission
          // (one per window for a fixed window), never one per waiter per retry.
          expect(refused).toBeLessThanOrEqual(
            algorithm === 'fixed-window' ? Math.ceil(waiters / limit) : waiters,
          );
          expect(limiter.waitingKeys).toBe(0);
          await limiter.close();
          expect(vi.getTimerCount()).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
  it('aborts, timeouts and mixed costs: each waiter settles once, admissions keep arrival order and fit the limit, nothing is left (property)', async () => {
    const algorithmArb = fc.constantFrom<AlgorithmName>(
      'fixed-window',
      'sliding-window',
      'sliding-log',
      'token-bucket',
      'leaky-bucket',
    );
    await fc.assert(
      fc.asyncProperty(
        algorithmArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 100, max: 2_000 }),
        fc.array(
          fc.record({
            cost: fc.integer({ min: 0, max: 4 }),
            abortAfterMs: fc.option(fc.integer({ min: 0, max: 6_000 }), { nil: undefined }),
            timeoutMs: fc.integer({ min: 1, max: 20_000 }),
          }),
          { minLength: 1, maxLength: 20 },
        ),
        async (algorithm, limit, windowMs, waiters) => {
          const limiter = limiterOf({ limits: [{ algorithm, limit, windowMs }] });
          const admitted: { index: number; at: number; cost: number }[] = [];
          const endings: string[] = waiters.map(() => 'pending');
          const calls = waiters.map(({ cost, abortAfterMs, timeoutMs }, index) => {
            const controller = new AbortController();
            if (abortAfterMs !== undefined) setTimeout(() => controller.abort(), abortAfterMs);
            const wanted = Math.min(cost, limit);
            return limiter
              .acquire({ key: 'key', cost: wanted }, { timeoutMs, signal: controller.signal })
              .then(
                () => {
                  expect(endings[index]).toBe('pending');
                  endings[index] = 'acquired';
                  admitted.push({ index, at: Date.now(), cost: wanted });
                },
                (error: unknown) => {
                  expect(endings[index]).toBe('pending');
                  expect(error).toBeInstanceOf(AcquireError);
                  endings[index] = (error as AcquireError).reason;
                },
              );
          });
          await vi.advanceTimersByTimeAsync(30_000);
          await Promise.all(calls);
          expect(endings).not.toContain('pending');
          // Those admitted went in arrival order (the others left the queue).
          const order = admitted.map((entry) => entry.index);
          expect(order).toEqual([...order].sort((a, b) => a - b));
          // An aborted or timed-out waiter never took points: what was admitted fits the limit.
          for (const entry of admitted) {
            const aligned = algorithm === 'fixed-window' || algorithm === 'sliding-window';
            const used = admitted
              .filter((other) =>
                aligned
                  ? Math.floor(other.at / windowMs) === Math.floor(entry.at / windowMs)
                  : other.at <= entry.at && other.at > entry.at - windowMs,
              )
              .reduce((sum, other) => sum + other.cost, 0);
            const allowed = algorithm === 'token-bucket' || algorithm === 'leaky-bucket' ? 2 * limit : limit;
            expect(used).toBeLessThanOrEqual(allowed);
          }
          expect(limiter.waitingKeys).toBe(0);
          await limiter.close();
          expect(vi.getTimerCount()).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});
