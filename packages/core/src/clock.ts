/** A source of wall-clock time in milliseconds. Injected so that tests need no sleeps. */
export interface Clock {
  now(): number;
}

/** The real clock (`Date.now()`). */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to: for tests of time-dependent logic. */
export class ManualClock implements Clock {
  #now: number;

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms` (negative values are rejected: time does not go back). */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('ManualClock cannot go back in time');
    this.#now += ms;
  }

  /** Sets the time to `ms`. */
  set(ms: number): void {
    this.#now = ms;
  }
}
