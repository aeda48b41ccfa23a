import { type Logger, withDeadline } from '@noa/core';
import { z } from 'zod';
import { setOptionsSchema } from './cache-options.js';
import { WarmAbortedError } from './errors.js';

/** Progress of `warm`, reported after each key. */
export interface WarmProgress {
  total: number;
  done: number;
  loaded: number;
  skipped: number;
  failed: number;
}

/** Final report of `warm`. */
export type WarmReport = WarmProgress;

/** Options of `warm`: the loaded entries' TTL, grace, sliding window and tags, plus concurrency, progress and a stop signal. */
export const warmOptionsSchema = setOptionsSchema
  .extend({
    /** Loader calls in flight at once (default 8). */
    concurrency: z.number().int().positive().optional(),
    /**
     * Called after each key with a copy of the counts. One that throws is logged (warn) and
     * warming goes on: to stop warming from it, abort `signal`.
     */
    onProgress: z
      .custom<(progress: Readonly<WarmProgress>) => void>((value) => typeof value === 'function', {
        message: 'a function',
      })
      .optional(),
    /**
     * Stops warming when aborted: no new load starts, loads in flight are abandoned (they finish
     * in the background and are cached, uncounted), and `warm` rejects with `WarmAbortedError`.
     */
    signal: z
      .custom<AbortSignal>((value) => value instanceof AbortSignal, { message: 'an AbortSignal' })
      .optional(),
  })
  .strict();

/** Options of `warm` (validated: `ConfigError` names the bad field). */
export type WarmOptions = z.input<typeof warmOptionsSchema>;

/** The slice of `Cache` that warming needs (keeps this file free of a cycle). */
export interface Warmable {
  getOrSet<T>(
    key: string,
    factory: (context: { readonly signal: AbortSignal }) => T | Promise<T>,
    options?: {
      ttlMs?: number;
      graceMs?: number;
      slidingTtlMs?: number;
      tags?: readonly string[];
      earlyRefreshBeta?: number;
      refreshThresholdMs?: number;
    },
  ): Promise<T>;
}

/** What warming needs from the cache besides `getOrSet`. */
export interface WarmContext {
  logger: Logger;
  /** Aborted when the cache closes (its reason a `ClosedError`). */
  closing: AbortSignal;
  /** The cache's `hardTimeoutMs`: how long a load is waited for, from its start (none: unbounded). */
  hardTimeoutMs?: number | undefined;
  /**
   * The key's factory run in progress (undefined: none), which settles once its value is
   * written: a load left running past a soft timeout counts as loaded only then, so that a read
   * after `warm` finds the value (its write, on a Cluster after a lease check, may land after
   * the loader settles).
   */
  runOf?: (key: string) => Promise<unknown> | undefined;
}

/**
 * Loads every key through `cache.getOrSet`, so already-cached keys cost one lookup. An abort
 * (the caller's signal, or the cache closing) settles it at once rather than after the loads in
 * flight: they may be slow, which is often why one aborts, and they cannot be cancelled
 * anyway (another caller may share their flight).
 */
export async function warmKeys<T>(
  cache: Warmable,
  keys: Iterable<string>,
  loader: (key: string, context: { readonly signal: AbortSignal }) => T | Promise<T>,
  options: WarmOptions,
  context: WarmContext,
): Promise<WarmReport> {
  const list = [...keys];
  const progress: WarmProgress = { total: list.length, done: 0, loaded: 0, skipped: 0, failed: 0 };
  const signals = [context.closing, options.signal].filter((signal) => signal !== undefined);
  const abortedError = (signal: AbortSignal) =>
    new WarmAbortedError({ ...progress }, { cause: signal.reason });
  const alreadyAborted = signals.find((signal) => signal.aborted);
  if (alreadyAborted) throw abortedError(alreadyAborted);
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const entryOptions = {
    ttlMs: options.ttlMs,
    graceMs: options.graceMs,
    slidingTtlMs: options.slidingTtlMs,
    tags: options.tags,
    // A fresh key is skipped, never refreshed early: a hit's early refresh (XFetch, or the
    // refresh-ahead threshold) ran the loader in the background, outside `concurrency` (one
    // per key near its expiry, all at once) and, with Redis, uncounted.
    earlyRefreshBeta: 0,
    refreshThresholdMs: 0,
  };
  let stopped = false;
  let next = 0;
  const loads = new LoadSlots();
  const lane = async () => {
    while (next < list.length && !stopped) {
      const key = list[next]!;
      next += 1;
      // A lane moves on from a load past the hard timeout, which still runs: without a slot per
      // load until it settles, a hanging source got a new load per lane per timeout.
      if (!(await loads.reserve(concurrency, context.hardTimeoutMs))) {
        if (stopped) return;
        progress.failed += 1;
        progress.done += 1;
        reportProgress(options.onProgress, progress, context.logger);
        continue;
      }
      if (stopped) {
        loads.release(undefined);
        return;
      }
      const started = Date.now();
      let load = undefined as Promise<T> | undefined;
      let failed = false;
      try {
        await cache.getOrSet(
          key,
          // The run's signal (see `FactoryContext.signal`), not warm's own: aborting `signal`
          // abandons the loads in flight, which finish and are cached.
          ({ signal }) => {
            load = (async () => loader(key, { signal }))();
            return load;
          },
          entryOptions,
        );
      } catch {
        failed = true;
      }
      loads.release(load);
      // getOrSet may have served a value in grace for the key while its load failed, or still
      // runs (a soft timeout): the key counts as loaded once the loader succeeded and its value
      // was written (the run's write is not the loader's to report), within the hard timeout
      // that bounds a load with nothing in grace (a hanging loader must not hang warm).
      if (load !== undefined && !failed) {
        const hardMs = context.hardTimeoutMs;
        const run = context.runOf?.(key);
        const written: Promise<unknown> =
          run === undefined ? load : Promise.all([load, run.catch(() => undefined)]);
        const bounded =
          hardMs === undefined
            ? written
            : withDeadline(written, Math.max(1, hardMs - (Date.now() - started)), 'cache warm');
        failed = await bounded.then(
          () => false,
          () => true,
        );
      }
      // Abandoned: the caller has its report already, which must not change under it.
      if (stopped) return;
      if (failed) progress.failed += 1;
      else if (load !== undefined) progress.loaded += 1;
      else progress.skipped += 1;
      progress.done += 1;
      reportProgress(options.onProgress, progress, context.logger);
    }
  };
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = function (this: AbortSignal) {
      stopped = true;
      reject(abortedError(this));
    };
    for (const signal of signals) signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([
      Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, lane)),
      aborted,
    ]);
    return progress;
  } finally {
    stopped = true;
    for (const signal of signals) signal.removeEventListener('abort', onAbort!);
  }
}

/** A progress callback's error must not stop warming, nor leave its lanes running unreported. */
function reportProgress(
  onProgress: ((progress: Readonly<WarmProgress>) => void) | undefined,
  progress: WarmProgress,
  logger: Logger,
): void {
  if (!onProgress) return;
  try {
    onProgress({ ...progress });
  } catch (error) {
    logger.warn('warm onProgress threw; warming goes on', { error: String(error) });
  }
}

/**
 * The loader calls of one `warm`, counted from a lane's reservation until they settle (also
 * those a lane stopped waiting for), so that no more than `concurrency` run at once.
 */
class LoadSlots {
  #inFlight = 0;
  readonly #waiters: (() => void)[] = [];

  /**
   * Takes a slot once fewer than `limit` are taken; false when none came free within `ms`
   * (undefined: waits as long as it takes).
   */
  async reserve(limit: number, ms: number | undefined): Promise<boolean> {
    while (this.#inFlight >= limit) if (!(await this.#freed(ms))) return false;
    this.#inFlight += 1;
    return true;
  }

  /** Frees a reserved slot once `load` settles (at once when the lane ran no loader). */
  release(load: Promise<unknown> | undefined): void {
    const settled = () => {
      this.#inFlight -= 1;
      this.#waiters.shift()?.();
    };
    if (load === undefined) settled();
    else load.then(settled, settled);
  }

  #freed(ms: number | undefined): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer =
        ms === undefined
          ? undefined
          : setTimeout(() => {
              const index = this.#waiters.indexOf(wake);
              if (index >= 0) this.#waiters.splice(index, 1);
              resolve(false);
            }, ms).unref();
      this.#waiters.push(wake);
    });
  }
}
