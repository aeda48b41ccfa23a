import { describe, expect, it, vi } from 'vitest';
import { CoarseClock } from '../src/index.js';

describe('CoarseClock', () => {
  it('reuses one Date.now() reading for up to maxReuse further calls', () => {
    const spy = vi.spyOn(Date, 'now');
    try {
      const clock = new CoarseClock(3);
      spy.mockReturnValue(1_000);
      expect([clock.now(), clock.now(), clock.now(), clock.now()]).toEqual([1_000, 1_000, 1_000, 1_000]);
      expect(spy).toHaveBeenCalledTimes(1);
      spy.mockReturnValue(2_000);
      expect(clock.now()).toBe(2_000);
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
  });

  it('forgets its reading at the end of the event-loop turn', async () => {
    const spy = vi.spyOn(Date, 'now');
    try {
      const clock = new CoarseClock(100);
      spy.mockReturnValue(1_000);
      expect(clock.now()).toBe(1_000);
      spy.mockReturnValue(1_005);
      expect(clock.now()).toBe(1_000);
      await new Promise((resolve) => setImmediate(resolve));
      expect(clock.now()).toBe(1_005);
    } finally {
      spy.mockRestore();
    }
  });

  it('reads the clock on every call with maxReuse 0', () => {
    const spy = vi.spyOn(Date, 'now');
    try {
      const clock = new CoarseClock(0);
      spy.mockReturnValueOnce(1).mockReturnValueOnce(2);
      expect([clock.now(), clock.now()]).toEqual([1, 2]);
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects a maxReuse that is not a non-negative integer', () => {
    expect(() => new CoarseClock(-1)).toThrow(RangeError);
    expect(() => new CoarseClock(1.5)).toThrow(RangeError);
  });

  it('still forgets its reading at the end of each turn after fake timers were installed and removed', async () => {
    // The shared coarseClock outlives a test file's fake timers: a reading taken under them armed
    // a fake setImmediate that useRealTimers() throws away, and it must not be reused for ever.
    const clock = new CoarseClock(100);
    vi.useFakeTimers();
    try {
      clock.now();
    } finally {
      vi.useRealTimers();
    }
    const spy = vi.spyOn(Date, 'now');
    try {
      spy.mockReturnValue(1_000);
      for (let call = 0; call <= 100; call += 1) clock.now(); // uses up the reading taken under fake timers
      expect(clock.now()).toBe(1_000);
      spy.mockReturnValue(2_000);
      await new Promise((resolve) => setImmediate(resolve));
      expect(clock.now()).toBe(2_000);
    } finally {
      spy.mockRestore();
    }
  });
});
