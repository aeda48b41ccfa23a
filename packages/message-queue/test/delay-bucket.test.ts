import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { delayBucket } from '../src/delay-bucket.js';

describe('delayBucket', () => {
  it('never runs early and at most ~10% late', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2_000_000_000 }), (delay) => {
        const bucket = delayBucket(delay);
        expect(bucket).toBeGreaterThanOrEqual(delay);
        expect(bucket).toBeLessThanOrEqual(Math.ceil(delay * 1.1));
      }),
    );
  });

  it('keeps the number of buckets small', () => {
    const buckets = new Set(Array.from({ length: 100_000 }, (_, n) => delayBucket(n + 1)));
    expect(buckets.size).toBeLessThan(400);
  });
});
