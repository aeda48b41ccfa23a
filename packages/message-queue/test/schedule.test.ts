import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextFireTimes, nextIntervalTime, tickJobId } from '../src/index.js';

describe('schedule math', () => {
  it('every-second cron fires on each whole second after the given time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }), (after) => {
        const [first, second] = nextFireTimes('* * * * * *', after, 2);
        expect(first! % 1_000).toBe(0);
        expect(first!).toBeGreaterThan(after);
        expect(first! - after).toBeLessThanOrEqual(1_000);
        expect(second! - first!).toBe(1_000);
      }),
      { numRuns: 50 },
    );
  });

  it('interval ticks are aligned so every instance derives the same tick ids', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3_600_000 }), fc.nat(2_000_000_000_000), (every, after) => {
        const next = nextIntervalTime(every, after);
        expect(next % every).toBe(0);
        expect(next).toBeGreaterThan(after);
        expect(next - after).toBeLessThanOrEqual(every);
        expect(tickJobId('s', next)).toBe(tickJobId('s', nextIntervalTime(every, next - 1)));
      }),
    );
  });

  it('a daily cron fires at the given hour', () => {
    const [next] = nextFireTimes('0 3 * * *', Date.UTC(2026, 0, 1, 12), 1, 'UTC');
    expect(new Date(next!).toISOString()).toBe('2026-01-02T03:00:00.000Z');
  });
});
