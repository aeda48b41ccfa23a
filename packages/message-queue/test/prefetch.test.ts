import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autoPrefetch, autoPrefetchFloor, movingAverage } from '../src/prefetch.js';

describe('autoPrefetch', () => {
  it('leases nothing ahead before both averages are known', () => {
    expect(autoPrefetch(undefined, 1, 4)).toBe(0);
    expect(autoPrefetch(0.01, undefined, 4)).toBe(0);
  });

  it('no-op handlers at concurrency 1 lease a batch; slow handlers none', () => {
    expect(autoPrefetch(0.005, 0.05, 1)).toBe(10);
    expect(autoPrefetch(0.001, 0.5, 1)).toBe(autoPrefetchFloor);
    expect(autoPrefetch(0.001, 0.5, 100)).toBe(100);
    expect(autoPrefetch(20, 0.5, 1)).toBe(0);
  });

  it('leases what runs during one round trip, bounded, only while handlers are shorter than it', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.double({ min: 0, max: 1e4, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        (handlerMs, exchangeMs, concurrency) => {
          const ahead = autoPrefetch(handlerMs, exchangeMs, concurrency);
          if (handlerMs >= exchangeMs) expect(ahead).toBe(0);
          else {
            expect(ahead).toBeGreaterThanOrEqual(1);
            expect(ahead).toBeLessThanOrEqual(Math.max(concurrency, autoPrefetchFloor));
            // Never more than the worker runs during about one round trip.
            expect(ahead).toBeLessThanOrEqual(
              Math.ceil((concurrency * exchangeMs) / Math.max(handlerMs, 0.001)),
            );
          }
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
