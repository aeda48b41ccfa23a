import { busyFor, startEchoProcess } from '@noa/testkit';
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

  // A process busy past the deadline wakes with the timer due and the reply already in; Node runs
  // due timers before it reads I/O, so a verdict taken in the timer timed out a call answered in
  // a millisecond (the rate limiter's checks got their fail mode under load).
  it('resolves a reply that came in while the process was busy past the deadline', async () => {
    const echo = await startEchoProcess();
    try {
      const answered = withDeadline(echo.request('ping'), 50, 'echo');
      busyFor(500);
      await expect(answered).resolves.toBe('ping');
      // A reply that does not come still times out.
      await expect(withDeadline(new Promise<string>(() => {}), 50, 'never')).rejects.toBeInstanceOf(
        TimeoutError,
      );
    } finally {
      echo.close();
    }
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

  it('refuses a step or a time that is not finite (time would be NaN from then on)', () => {
    const clock = new ManualClock(100);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.advance(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => clock.set(Number.NaN)).toThrow(RangeError);
    expect(clock.now()).toBe(100);
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

describe('withDeadline and delay at the edges', () => {
  it('treats a timeout of 0, below 0 or not finite as no deadline (the work itself is returned)', async () => {
    const work = new Promise<number>((resolve) => setTimeout(() => resolve(1), 20));
    for (const timeoutMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(withDeadline(work, timeoutMs, 'op')).toBe(work);
    }
  });

  it('lets work whose timer was set first win a deadline of the same length', async () => {
    // Node runs timers of one duration in the order they were set, so the answer is the work's.
    const work = new Promise<string>((resolve) => setTimeout(() => resolve('work'), 20));
    await expect(withDeadline(work, 20, 'op')).resolves.toBe('work');
  });

  it('rejects delay at once with the reason of a signal aborted before the call', async () => {
    await expect(delay(2 ** 40, AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
});
