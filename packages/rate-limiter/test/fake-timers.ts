import { afterEach, beforeEach, vi } from 'vitest';

/**
 * Fake timers for the acquire tests, from `now`: setTimeout, setImmediate and Date, each with its
 * clear function. clearImmediate must be faked with setImmediate: Node's own, given a fake
 * immediate (startDeadline's cancel), miscounts the worker's immediates, and on Node 22 its event
 * loop then stopped inside advanceTimersByTimeAsync (a 30 s timeout in CI). Call it in a describe.
 */
export function useAcquireFakeTimers(now: number): void {
  beforeEach(() => {
    vi.useFakeTimers({
      now,
      toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'Date'],
    });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}
