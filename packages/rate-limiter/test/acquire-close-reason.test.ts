import { ClosedError, ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { AcquireError, createRateLimiter, MemoryStore, type RateLimitStore } from '../src/index.js';
import { RemoteMemoryStore } from './remote-memory-store.js';

// close() while callers wait in acquire(): a caller whose own end came first (its timeout passed
// by the limiter's clock, its timer not run yet because the process was busy) is told that end,
// not ClosedError; a caller still within its timeout gets ClosedError. Alike on the memory store
// and on a remote one (where the head's check may be in flight at close()).

const windowStart = 1_800_000_000_000;

/** A remote store whose consume() answers only once `open()` is called. */
class GatedRemoteStore extends RemoteMemoryStore {
  #gate: Promise<void> = new Promise(() => {});
  #open: () => void = () => {};
  calls = 0;
  constructor(clock: ManualClock) {
    super(clock);
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }
  open(): void {
    this.#open();
  }
  override async consume(...args: Parameters<RemoteMemoryStore['consume']>) {
    this.calls++;
    await this.#gate;
    return super.consume(...args);
  }
}

const stores: { name: string; make: (clock: ManualClock) => RateLimitStore }[] = [
  { name: 'memory store', make: (clock) => new MemoryStore({ clock }) },
  { name: 'remote store', make: (clock) => new RemoteMemoryStore(clock) },
];

/**
 * Lets the head checks answer: an immediate first (a remote store's batch goes out on one, queued
 * before this one; its answer is read in the microtasks after it), then a few ms. A timer alone
 * could fire first: a process descheduled for 5 ms runs due timers before the immediates, and the
 * check had not answered (retryAfterMs 0 instead of the refusal's, red CI at 60d955fe on Node 22).
 */
const settleTurns = async () => {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 5));
};

describe.each(stores)('close() while acquire() waits, $name', ({ make }) => {
  it('a waiter past its timeout gets its timeout, one within it ClosedError', async () => {
    const clock = new ManualClock(windowStart);
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock,
      store: make(clock),
    });
    await limiter.check('k');
    await limiter.check('j');
    // Both wait for the window's end (60 s); the first may wait 100 s, the second 200 s.
    const first = limiter.acquire('k', { timeoutMs: 100_000 }).catch((error: unknown) => error);
    const second = limiter.acquire('j', { timeoutMs: 200_000 }).catch((error: unknown) => error);
    await settleTurns();
    expect(limiter.waitingKeys).toBe(2);
    // The first one's deadline passes (a busy process has not run its timer), then close().
    clock.advance(150_000);
    await limiter.close();
    const timedOut = await first;
    expect(timedOut).toBeInstanceOf(AcquireError);
    expect(timedOut).toMatchObject({ key: 'k', reason: 'timeout', waitedMs: 150_000, retryAfterMs: 60_000 });
    expect(await second).toBeInstanceOf(ClosedError);
    expect(limiter.waitingKeys).toBe(0);
  });

  it('a waiter whose signal aborted gets aborted even when close() runs first in its turn', async () => {
    const clock = new ManualClock(windowStart);
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock,
      store: make(clock),
    });
    await limiter.check('k');
    const controller = new AbortController();
    const waiting = limiter
      .acquire('k', { signal: controller.signal, timeoutMs: 100_000 })
      .catch((error: unknown) => error);
    await settleTurns();
    const closing = limiter.close();
    controller.abort(new Error('caller gone'));
    await closing;
    expect(await waiting).toMatchObject({ reason: 'aborted', cause: { message: 'caller gone' } });
  });
});

describe('close() while the head check of acquire() is in flight on a remote store', () => {
  it('past the caller’s timeout: timeout; within it: ClosedError', async () => {
    const clock = new ManualClock(windowStart);
    const store = new GatedRemoteStore(clock);
    const limiter = createRateLimiter({
      limits: [{ limit: 5, windowMs: 60_000 }],
      clock,
      store,
      deadlineMs: 600_000,
    });
    const late = limiter.acquire('k', { timeoutMs: 100_000 }).catch((error: unknown) => error);
    const early = limiter.acquire('j', { timeoutMs: 300_000 }).catch((error: unknown) => error);
    await settleTurns();
    expect(store.calls).toBeGreaterThan(0);
    clock.advance(200_000);
    await limiter.close();
    expect(await late).toMatchObject({
      name: 'AcquireError',
      key: 'k',
      reason: 'timeout',
      waitedMs: 200_000,
    });
    expect(await early).toBeInstanceOf(ClosedError);
    store.open();
  });
});
