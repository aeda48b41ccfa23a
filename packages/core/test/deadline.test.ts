import { describe, expect, it } from 'vitest';
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
