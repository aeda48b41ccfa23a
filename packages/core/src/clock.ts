/** A source of wall-clock time in milliseconds. Injected so that tests need no sleeps. */
export interface Clock {
  now(): number;
}

/** The real clock (`Date.now()`). */
export const systemClock: Clock = { now: () => Date.now() };

/**
 * A monotonic clock (`performance.now()`: milliseconds since the process started, never stepped
 * by NTP or a VM resume). For durations and ages only; its readings are not dates.
 */
export const monotonicClock: Clock = { now: () => performance.now() };

/** A clock that moves only when told to: for tests of time-dependent logic. */
export class ManualClock implements Clock {
  #now: number;

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /**
   * Moves time forward by `ms` (negative values are rejected: time does not go back; so are
   * values that are not finite, which would leave the clock at NaN or Infinity for good).
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`ManualClock cannot advance by ${ms} ms`);
    if (ms < 0) throw new RangeError('ManualClock cannot go back in time');
    this.#now += ms;
  }

  /** Sets the time to `ms` (a finite number). */
  set(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError(`ManualClock cannot be set to ${ms}`);
    this.#now = ms;
  }
}

/**
 * `Date.now()` read at most once per `maxReuse` calls within one event-loop turn: for hot paths
 * that read the time on every call (a memory rate limiter, a TTL check), where the clock read is
 * a large share of the work. A reading is reused by up to `maxReuse` later calls and never past
 * the end of the event-loop turn it was taken in (a `setImmediate`, unref'd, forgets it), so a
 * server that answers one request per turn reads the real time for each. The cost of the
 * saving: within one long synchronous stretch, up to `maxReuse` calls may see a time that is
 * older than the real one by however long that stretch ran between them.
 */
export class CoarseClock implements Clock {
  #now = 0;
  #left = 0;
  /** The `setImmediate` that will forget the reading, or undefined when none is pending. */
  #armedWith: typeof setImmediate | undefined;
  readonly #maxReuse: number;
  readonly #source: (() => number) | undefined;
  readonly #forget = (): void => {
    this.#left = 0;
    this.#armedWith = undefined;
  };

  /**
   * @param maxReuse later calls that may reuse one reading (default 16).
   * @param source the time read (default: `Date.now()`, looked up on each read so that fake
   *   timers installed later are seen; `() => performance.now()` for a coarse monotonic clock).
   */
  constructor(maxReuse = 16, source?: () => number) {
    if (!Number.isInteger(maxReuse) || maxReuse < 0) throw new RangeError('maxReuse must be an integer ≥ 0');
    this.#maxReuse = maxReuse;
    this.#source = source;
  }

  now(): number {
    // Small enough for V8 to inline into a hot caller; the read itself is out of line.
    if (this.#left > 0) {
      this.#left -= 1;
      return this.#now;
    }
    return this.#read();
  }

  /** Reads the source and arms the forgetting of the reading. */
  #read(): number {
    this.#now = this.#source === undefined ? Date.now() : this.#source();
    this.#left = this.#maxReuse;
    // Armed through another setImmediate than today's: fake timers were installed or removed
    // since, and removing them drops their pending callbacks, so arm again with the current one.
    if (this.#armedWith !== setImmediate && this.#maxReuse > 0) {
      this.#armedWith = setImmediate;
      // `unref?.`: fake-timer libraries may return a handle without it.
      setImmediate(this.#forget).unref?.();
    }
    return this.#now;
  }
}

/** The shared {@link CoarseClock} (one `setImmediate` per event-loop turn at most, for all users). */
export const coarseClock: Clock = new CoarseClock();

/** The shared coarse twin of {@link monotonicClock}: for ages stamped on a hot path. */
export const coarseMonotonicClock: Clock = new CoarseClock(16, () => performance.now());
