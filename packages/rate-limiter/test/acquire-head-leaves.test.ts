import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { AcquireError, createRateLimiter, type RateLimiter } from '../src/index.js';
import { useAcquireFakeTimers } from './fake-timers.js';

// x/time/rate's Reservation.Cancel gives its tokens to the reservations behind it
// (golang/go#69419: it restored the wrong number), and .NET's queued leases move up when one is
// cancelled. Ours: only the head of a key's acquire() queue is checked, and a refusal's retry time
// paces the queue. When the head leaves (abort, timeout) the next one may need fewer points and
// pass sooner: it must not sleep out, or be refused by, the departed head's retry time.

const start = 1_700_000_000_000;
const clock = { now: () => Date.now() };

/** A token bucket of 10 per 10 s (one token a second), drained. */
async function drainedBucket(): Promise<RateLimiter> {
  const limiter = createRateLimiter({
    limits: [{ algorithm: 'token-bucket', limit: 10, windowMs: 10_000 }],
    clock,
  });
  expect((await limiter.check({ key: 'k', cost: 10 })).allowed).toBe(true);
  return limiter;
}

/** The outcome of `promise` as it stands, without waiting. */
function track<T>(promise: Promise<T>): { state: () => string; promise: Promise<T> } {
  let state = 'pending';
  const tracked = promise.then(
    (value) => {
      state = 'acquired';
      return value;
    },
    (error: unknown) => {
      state = error instanceof AcquireError ? error.reason : 'error';
      throw error;
    },
  );
  tracked.catch(() => {});
  return { state: () => state, promise: tracked };
}

describe('acquire(): the head of a queue leaves', () => {
  useAcquireFakeTimers(start);

  it('a cheaper waiter behind an aborted head goes when its own cost fits, not at the head’s retry time', async () => {
    const limiter = await drainedBucket();
    const controller = new AbortController();
    const head = track(
      limiter.acquire({ key: 'k', cost: 10 }, { signal: controller.signal, timeoutMs: 20_000 }),
    );
    const next = track(limiter.acquire({ key: 'k', cost: 1 }, { timeoutMs: 20_000 }));
    await vi.advanceTimersByTimeAsync(2_000);
    expect(next.state()).toBe('pending');
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(head.state()).toBe('aborted');
    // Two tokens are in: the next waiter (cost 1) goes now, not at 10 s.
    expect(next.state()).toBe('acquired');
    // A newcomer is judged by the bucket as it stands, not by the departed head's refusal.
    const newcomer = track(limiter.acquire({ key: 'k', cost: 1 }, { timeoutMs: 3_000 }));
    await vi.advanceTimersByTimeAsync(0);
    expect(newcomer.state()).toBe('acquired');
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a head that leaves while its check is in flight: the refusal it brings does not judge those behind', async () => {
    const limiter = await drainedBucket();
    const controller = new AbortController();
    const head = track(limiter.acquire({ key: 'k', cost: 10 }, { signal: controller.signal }));
    // Behind it, one that can wait 5 s: the head's refusal (10 s) would refuse it at once.
    const next = track(limiter.acquire({ key: 'k', cost: 1 }, { timeoutMs: 5_000 }));
    // The head's check is sent at once; it leaves before the answer is read.
    controller.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(head.state()).toBe('aborted');
    expect(next.state()).toBe('pending');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(next.state()).toBe('acquired');
    expect(limiter.waitingKeys).toBe(0);
    await limiter.close();
  });

  it('a head leaving with one of the same cost behind keeps the pace: no check before the retry time', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      limits: [{ algorithm: 'token-bucket', limit: 10, windowMs: 10_000 }],
      clock,
      registry,
    });
    const checks = async () => {
      const data = await registry.getSingleMetric('noa_rate_limiter_checks_total')!.get();
      return data.values.reduce((sum, value) => sum + value.value, 0);
    };
    expect((await limiter.check({ key: 'k', cost: 10 })).allowed).toBe(true);
    const controller = new AbortController();
    const head = track(
      limiter.acquire({ key: 'k', cost: 5 }, { signal: controller.signal, timeoutMs: 20_000 }),
    );
    const next = track(limiter.acquire({ key: 'k', cost: 5 }, { timeoutMs: 20_000 }));
    await vi.advanceTimersByTimeAsync(1_000);
    const before = await checks();
    controller.abort();
    await vi.advanceTimersByTimeAsync(3_999);
    expect(head.state()).toBe('aborted');
    // The one behind needs as many tokens: the head's retry time (5 s) holds for it too.
    expect(next.state()).toBe('pending');
    expect(await checks()).toBe(before);
    await vi.advanceTimersByTimeAsync(1);
    expect(next.state()).toBe('acquired');
    expect(await checks()).toBe(before + 1);
    await limiter.close();
  });
});
