import { ConfigError } from '@noa/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcquireError, createRateLimiter } from '../src/index.js';

// acquire()'s `signal` is taken by its shape, as Node's own APIs take one (rstest#1745): a
// polyfilled signal (the abort-controller package, a test environment's) or one from another
// realm (jsdom's) is not an instance of this realm's AbortSignal, and was refused with a
// ConfigError.

/** A polyfill's signal: an EventTarget with `aborted` and `reason`, not this realm's AbortSignal. */
class PolyfilledSignal extends EventTarget {
  aborted = false;
  reason: unknown = undefined;
  abort(reason: unknown): void {
    this.aborted = true;
    this.reason = reason;
    this.dispatchEvent(new Event('abort'));
  }
}

const start = 1_700_000_000_000;
const clock = { now: () => Date.now() };

describe('acquire() signal', () => {
  beforeEach(() => {
    vi.useFakeTimers({
      now: start,
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'Date'],
    });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('accepts a signal that is not an AbortSignal instance, and honours its abort', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], clock });
    await limiter.acquire('k');
    const signal = new PolyfilledSignal();
    expect(signal).not.toBeInstanceOf(AbortSignal);
    const waiting = limiter
      .acquire('k', { signal: signal as unknown as AbortSignal })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    signal.abort(new Error('user left'));
    const error = (await waiting) as AcquireError;
    expect(error).toBeInstanceOf(AcquireError);
    expect(error).toMatchObject({ reason: 'aborted', waitedMs: 100 });
    expect((error.cause as Error).message).toBe('user left');
    expect(limiter.waitingKeys).toBe(0);

    const already = new PolyfilledSignal();
    already.abort('gone');
    const refused = await limiter
      .acquire('k', { signal: already as unknown as AbortSignal })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ reason: 'aborted' });
    await limiter.close();
  });

  it('still refuses what is not a signal, naming the field', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], clock });
    for (const signal of [{}, { aborted: false }, 'abort', null])
      await expect(limiter.acquire('k', { signal: signal as unknown as AbortSignal })).rejects.toThrow(
        expect.objectContaining({ message: expect.stringMatching(/signal/) }) as unknown as Error,
      );
    await expect(limiter.acquire('k', { signal: {} as AbortSignal })).rejects.toBeInstanceOf(ConfigError);
    await limiter.close();
  });
});
