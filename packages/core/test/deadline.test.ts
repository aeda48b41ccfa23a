import { describe, expect, it, vi } from 'vitest';
import { delay, ManualClock, TimeoutError, withDeadline } from '../src/index.js';

describe('withDeadline', () => {
  it('passes through a value that arrives in time', async () => {
    await expect(withDeadline(Promise.resolve(7), 50, 'op')).resolves.toBe(7);
  });

  it('rejects with TimeoutError and calls onTimeout when work is late', async () => {
    let aborted = false;
    const never = new Promise<number>(() => {});
    const started = performance.now();
    await expect(
      withDeadline(never, 20, 'slow op', () => {
        aborted = true;
      }),
    ).rejects.toBeInstanceOf(TimeoutError);
    expect(aborted).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('passes through the rejection of failed work', async () => {
    await expect(withDeadline(Promise.reject(new Error('boom')), 50, 'op')).rejects.toThrow('boom');
  });
});

describe('delay', () => {
  it('rejects with the abort reason', async () => {
    const controller = new AbortController();
    const pending = delay(10_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
  });
});

describe('ManualClock', () => {
  it('moves only when told and never backwards', () => {
    const clock = new ManualClock(100);
    clock.advance(50);
    expect(clock.now()).toBe(150);
    expect(() => clock.advance(-1)).toThrow(RangeError);
  });
});

describe('deadlines beyond the 32-bit timer range', () => {
  // setTimeout clamps a delay above 2^31 − 1 ms to 1 ms: a 25-day deadline must not fire at once.
  const longMs = 2 ** 31 + 10;

  it('withDeadline waits the whole deadline', async () => {
    vi.useFakeTimers();
    try {
      let outcome = 'pending';
      withDeadline(new Promise<number>(() => {}), longMs, 'long op').catch((error: unknown) => {
        outcome = error instanceof TimeoutError ? 'timeout' : 'other';
      });
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect(outcome).toBe('pending');
      await vi.advanceTimersByTimeAsync(20);
      expect(outcome).toBe('timeout');
    } finally {
      vi.useRealTimers();
    }
  });

  it('delay waits the whole time', async () => {
    vi.useFakeTimers();
    try {
      let fired = false;
      void delay(longMs).then(() => {
        fired = true;
      });
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect(fired).toBe(false);
      await vi.advanceTimersByTimeAsync(20);
      expect(fired).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('withDeadline with an onTimeout that throws', () => {
  it('still rejects with TimeoutError, carrying the thrown error as cause', async () => {
    const thrown = new Error('abort failed');
    const error = await withDeadline(new Promise<number>(() => {}), 5, 'op', () => {
      throw thrown;
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).cause).toBe(thrown);
  });
});
