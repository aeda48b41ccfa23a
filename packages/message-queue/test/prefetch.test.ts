import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autoPrefetch, movingAverage } from '../src/prefetch.js';

describe('autoPrefetch', () => {
  it('leases nothing ahead before both averages are known', () => {
    expect(autoPrefetch(undefined, 1, 4)).toBe(0);
    expect(autoPrefetch(0.01, undefined, 4)).toBe(0);
  });

  it('leases up to the concurrency ahead only while handlers are shorter than a round trip', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        (handlerMs, exchangeMs, concurrency) => {
          const ahead = autoPrefetch(handlerMs, exchangeMs, concurrency);
          expect(ahead).toBe(handlerMs < exchangeMs ? concurrency : 0);
        },
      ),
    );
  });
});

describe('movingAverage', () => {
  it('starts at the first sample and stays between the old average and the sample', () => {
    expect(movingAverage(undefined, 5)).toBe(5);
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        (average, sample) => {
          const next = movingAverage(average, sample);
          expect(next).toBeGreaterThanOrEqual(Math.min(average, sample) - 1e-9);
          expect(next).toBeLessThanOrEqual(Math.max(average, sample) + 1e-9);
        },
      ),
    );
  });
});
