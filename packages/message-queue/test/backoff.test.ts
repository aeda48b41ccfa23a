import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, backoffSchema, maxDelayMs } from '../src/index.js';

describe('backoffDelay', () => {
  it('is at most maxDelayMs whatever the strategy, fixed delay or exponential cap asks (RabbitMQ refuses longer)', () => {
    const strategies = { forever: () => 2 ** 40 };
    // Before: 2 ** 40, and each exchange carrying the retry failed at the broker.
    expect(backoffDelay({ type: 'custom', strategy: 'forever' }, 1, Math.random, strategies)).toBe(
      maxDelayMs,
    );
    expect(backoffDelay({ type: 'fixed', delayMs: 1e15 }, 1)).toBe(maxDelayMs);
    expect(backoffDelay({ type: 'exponential', delayMs: 1e12, maxDelayMs: 1e15, jitter: 0 }, 10)).toBe(
      maxDelayMs,
    );
    expect(backoffDelay({ type: 'fixed', delayMs: maxDelayMs - 1 }, 1)).toBe(maxDelayMs - 1);
  });

  it('fixed backoff is constant', () => {
    fc.assert(
      fc.property(fc.nat(100_000), fc.integer({ min: 1, max: 100 }), (delayMs, attempt) => {
        expect(backoffDelay({ type: 'fixed', delayMs }, attempt)).toBe(delayMs);
      }),
    );
  });

  it('exponential backoff stays within [ceiling·(1−jitter), ceiling] and never exceeds the max', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 0.999_999, noNaN: true }),
        (delayMs, maxDelayMs, jitter, attempt, random) => {
          const delay = backoffDelay(
            { type: 'exponential', delayMs, maxDelayMs, jitter },
            attempt,
            () => random,
          );
          const ceiling = Math.min(maxDelayMs, delayMs * 2 ** (attempt - 1));
          expect(delay).toBeLessThanOrEqual(Math.round(ceiling));
          expect(delay).toBeGreaterThanOrEqual(Math.floor(ceiling * (1 - jitter)));
        },
      ),
    );
  });

  it('exponential backoff without jitter doubles until the cap', () => {
    const backoff = backoffSchema.parse({ type: 'exponential', delayMs: 100, maxDelayMs: 1_000, jitter: 0 });
    expect([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(backoff, attempt))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it('custom backoff calls the named strategy, and treats junk as no delay', () => {
    const strategies = { linear: (attempt: number) => attempt * 10, broken: () => Number.NaN };
    expect(backoffDelay({ type: 'custom', strategy: 'linear' }, 3, Math.random, strategies)).toBe(30);
    expect(backoffDelay({ type: 'custom', strategy: 'broken' }, 3, Math.random, strategies)).toBe(0);
    expect(backoffDelay({ type: 'custom', strategy: 'missing' }, 3, Math.random, strategies)).toBe(0);
  });
});
