import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HillClimber } from '../src/l1/policies/hill-climber.js';

const samplePeriod = 10_000;

/**
 * Feeds `samples` samples whose hit rate is `landscape(window)` for the window in force
 * (hits first, then misses: the climber only sees counts) and returns the window after each.
 */
function climb(climber: HillClimber, landscape: (window: number) => number, samples: number): number[] {
  const windows: number[] = [];
  for (let sample = 0; sample < samples; sample += 1) {
    const hits = Math.round(samplePeriod * landscape(climber.window));
    for (let request = 0; request < samplePeriod; request += 1) climber.record(request < hits);
    windows.push(climber.window);
  }
  return windows;
}

describe('hill climber', () => {
  it('keeps the window within [initial, capacity - 1], moves only at sample ends, by one step', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 400 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.boolean(), { maxLength: 3_000 }),
        (capacity, initialWindow, requests) => {
          const period = 50;
          const climber = new HillClimber(capacity, initialWindow, period);
          const floor = Math.min(capacity - 1, initialWindow);
          const step = Math.max(1, Math.round(capacity * 0.0625));
          let window = climber.window;
          requests.forEach((hit, index) => {
            const changed = climber.record(hit);
            expect(changed).toBe(climber.window !== window);
            if (changed) expect((index + 1) % period).toBe(0);
            expect(Math.abs(climber.window - window)).toBeLessThanOrEqual(step);
            expect(climber.window).toBeGreaterThanOrEqual(floor);
            expect(climber.window).toBeLessThanOrEqual(Math.max(1, capacity - 1));
            window = climber.window;
          });
        },
      ),
    );
  });

  it('grows the window to the top while growing pays (recency-heavy traffic)', () => {
    const capacity = 1_000;
    const climber = new HillClimber(capacity, 10, samplePeriod);
    const windows = climb(climber, (window) => 0.3 + 0.4 * (window / capacity), 40);
    expect(Math.max(...windows.slice(-10))).toBe(capacity - 1);
    expect(Math.min(...windows.slice(-10))).toBeGreaterThanOrEqual(capacity * 0.8);
  });

  it('returns to the smallest window while growing costs (frequency-heavy traffic)', () => {
    const capacity = 1_000;
    const climber = new HillClimber(capacity, 10, samplePeriod);
    const windows = climb(climber, (window) => 0.6 - 0.3 * (window / capacity), 40);
    expect(windows.slice(-30).every((window) => window === 10)).toBe(true);
  });

  it('settles on the smallest window when the window makes no measurable difference', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 5_000 }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        (capacity, rate) => {
          const climber = new HillClimber(capacity, 10, samplePeriod);
          const windows = climb(climber, () => rate, 8);
          expect(windows.slice(2)).toEqual(new Array(6).fill(10));
        },
      ),
      { numRuns: 30 },
    );
  });

  it('comes back down when a recency workload turns into a frequency one', () => {
    const capacity = 1_000;
    const climber = new HillClimber(capacity, 10, samplePeriod);
    climb(climber, (window) => 0.3 + 0.4 * (window / capacity), 40);
    const windows = climb(climber, (window) => 0.6 - 0.3 * (window / capacity), 40);
    expect(windows.at(-1)).toBe(10);
  });
});
