import { describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../src/index.js';
import { rejectionOf } from './acquire-rejection.js';
import { useAcquireFakeTimers } from './fake-timers.js';

// A caller refused at once by acquire() (its deadline comes before the head's next check, or the
// queue is full) is told how long from now until that check: not the head's refusal's own
// retryAfterMs, which counts from the refusal (a 60 s wait told to a caller arriving 50 s in).

/** A fixed-window start: windows of 60 s begin here. */
const start = 1_700_000_040_000;
const clock = { now: () => Date.now() };

describe('acquire(): retryAfterMs of a caller refused at once', () => {
  useAcquireFakeTimers(start);

  it('counts to the head’s next check from now, when the deadline comes first', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    await limiter.check('k');
    const head = limiter.acquire('k', { timeoutMs: 100_000 });
    await vi.advanceTimersByTimeAsync(50_000);
    const late = await rejectionOf(limiter.acquire('k', { timeoutMs: 1_000 }));
    expect(late.reason).toBe('limited');
    expect(late.retryAfterMs).toBe(10_000);
    await vi.advanceTimersByTimeAsync(10_000);
    await head;
    await limiter.close();
  });

  it('counts to the head’s next check from now, when the queue is full', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], clock });
    await limiter.check('k');
    const head = limiter.acquire('k', { timeoutMs: 100_000, maxQueue: 1 });
    await vi.advanceTimersByTimeAsync(45_000);
    const full = await rejectionOf(limiter.acquire('k', { timeoutMs: 100_000, maxQueue: 1 }));
    expect(full.reason).toBe('queue-full');
    expect(full.retryAfterMs).toBe(15_000);
    await vi.advanceTimersByTimeAsync(15_000);
    await head;
    await limiter.close();
  });
});
