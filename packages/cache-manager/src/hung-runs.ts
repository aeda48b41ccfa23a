/** A promise and its settling functions. */
export interface Resolvers<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

/**
 * `Promise.withResolvers()` (Node 22+; `engines` asks for 22.12), which the ES2023 lib does not
 * declare: a run's give-up promise without a closure of ours per run.
 */
export function withResolvers<T>(): Resolvers<T> {
  return (Promise as unknown as { withResolvers<U>(): Resolvers<U> }).withResolvers<T>();
}

/** What {@link HungRuns} reads of a factory run in progress to decide whether to give it up. */
export interface WatchedRun {
  /** `Date.now()` at the run's start. */
  readonly startedAt: number;
  /** `max(lock.leaseMs, hardTimeoutMs ?? 0)`: the longest run trusted (as `ReplacedValueKeeper`'s). */
  readonly trustedMs: number;
  /** Another run of the key started after this one (it outlived its lease, or a change superseded it). */
  replaced: boolean;
  /** Callers awaiting the run now (an early refresh's own wait is none). */
  waiters: number;
}

/**
 * Whether a run is given up at `now`: past its trusted time, and either replaced by another
 * run of its key or awaited by nobody. A run a caller with no timeout still awaits is kept
 * until replaced: that caller asked to wait.
 */
export function givenUp(run: WatchedRun, now: number): boolean {
  return now - run.startedAt >= run.trustedMs && (run.replaced || run.waiters === 0);
}

/** Keys whose give-ups are counted for the sampled log line, at most this many (oldest dropped). */
const loggedKeysMax = 1_024;

/**
 * The factory runs in progress, swept every `sweepMs` while there are any: a run {@link givenUp}
 * is handed to `giveUp` (which aborts its `ctx.signal` and settles it, so that everything that
 * held it lets go) and forgotten here. Kept, a factory that never settled (a fetch with no
 * timeout of its own against a hung source) held its run, its signal's controller and the
 * promise `close()` waits on for as long as the process lived: about 0.9 KB per hung run of one
 * key (one more per `lock.leaseMs`), 4.4 KB per key for distinct keys.
 *
 * One timer per cache, only while runs are in progress (unref'd): nothing on a call's path but
 * an add and a delete.
 */
export class HungRuns<Run extends WatchedRun> {
  readonly #runs = new Set<Run>();
  readonly #sweepMs: number;
  readonly #giveUp: (run: Run, runningMs: number) => void;
  /** Give-ups per key, of the last 1,024 keys given up (see {@link sampled}). */
  readonly #counts = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(sweepMs: number, giveUp: (run: Run, runningMs: number) => void) {
    this.#sweepMs = sweepMs;
    this.#giveUp = giveUp;
  }

  /** The runs watched now (for tests and measurements). */
  get size(): number {
    return this.#runs.size;
  }

  add(run: Run): void {
    // After `close()` the runs left are close()'s to abort.
    if (this.#closed) return;
    this.#runs.add(run);
    if (this.#timer === undefined) this.#arm();
  }

  /** The run's factory settled: nothing left to give up. */
  delete(run: Run): void {
    this.#runs.delete(run);
  }

  /** Sweeps once now (the timer's work; tests call it to skip the wait). */
  sweep(now = Date.now()): void {
    for (const run of this.#runs) {
      if (!givenUp(run, now)) continue;
      this.#runs.delete(run);
      this.#giveUp(run, now - run.startedAt);
    }
  }

  /**
   * Counts a give-up of `fullKey` and says whether to log it: the first, then the 2nd, 4th, 8th…
   * since, so a key that hangs for hours logs a few lines, not one per lease.
   */
  sampled(fullKey: string): number | undefined {
    const count = (this.#counts.get(fullKey) ?? 0) + 1;
    // Re-inserted, so the oldest key is first to go.
    this.#counts.delete(fullKey);
    this.#counts.set(fullKey, count);
    if (this.#counts.size > loggedKeysMax) this.#counts.delete(this.#counts.keys().next().value!);
    return (count & (count - 1)) === 0 ? count : undefined;
  }

  /** `close()`: no more sweeps (close aborts the runs left itself). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One function for every sweep's timer. */
  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.sweep();
    if (this.#runs.size > 0 && !this.#closed) this.#arm();
  };

  #arm(): void {
    this.#timer = setTimeout(this.#onTimer, this.#sweepMs);
    this.#timer.unref();
  }
}
