import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoarseClock, coarseMonotonicClock, monotonicClock } from '../src/index.js';

describe('monotonic clocks', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('do not follow a wall-clock step', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const before = monotonicClock.now();
    const coarseBefore = coarseMonotonicClock.now();
    vi.setSystemTime(Date.now() - 3_600_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(monotonicClock.now()).toBeGreaterThanOrEqual(before);
    expect(monotonicClock.now() - before).toBeLessThan(60_000);
    expect(coarseMonotonicClock.now()).toBeGreaterThanOrEqual(coarseBefore);
  });

  it('a CoarseClock reads the source it is given, once per maxReuse calls', () => {
    let reads = 0;
    const clock = new CoarseClock(2, () => {
      reads += 1;
      return 42 + reads;
    });
    expect([clock.now(), clock.now(), clock.now(), clock.now()]).toEqual([43, 43, 43, 44]);
    expect(reads).toBe(2);
  });
});
