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

  // Peers' complaint (bull #2207, node-cron #563): a daily cron in a DST zone ran twice when the
  // clocks went back, and not at all when they went forward.
  it('a daily cron in a DST zone fires once on the day the clocks go back, and on the day they go forward', () => {
    const iso = (times: number[]) => times.map((time) => new Date(time).toISOString());
    // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:30 happens twice.
    expect(
      iso(nextFireTimes('30 1 * * *', Date.parse('2026-10-31T12:00:00Z'), 2, 'America/New_York')),
    ).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
    // A process started between the two 01:30s does not fire the second one either.
    expect(
      iso(nextFireTimes('30 1 * * *', Date.parse('2026-11-01T05:45:00Z'), 1, 'America/New_York')),
    ).toEqual(['2026-11-02T06:30:00.000Z']);
    // 2026-03-08: 02:00 EST becomes 03:00 EDT, so 02:30 does not exist: it fires at 03:00 EDT.
    expect(
      iso(nextFireTimes('30 2 * * *', Date.parse('2026-03-07T12:00:00Z'), 2, 'America/New_York')),
    ).toEqual(['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']);
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
