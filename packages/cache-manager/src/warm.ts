import { z } from 'zod';
import { setOptionsSchema } from './cache-options.js';

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

/** Options of `warm`: the loaded entries' TTL, grace, sliding window and tags, plus concurrency and progress. */
export const warmOptionsSchema = setOptionsSchema
  .extend({
    /** Loader calls in flight at once (default 8). */
    concurrency: z.number().int().positive().optional(),
    /** Called after each key. */
    onProgress: z
      .custom<(progress: Readonly<WarmProgress>) => void>((value) => typeof value === 'function')
      .optional(),
  })
  .strict();

/** Options of `warm` (validated: `ConfigError` names the bad field). */
export type WarmOptions = z.input<typeof warmOptionsSchema>;

/** The slice of `Cache` that warming needs (keeps this file free of a cycle). */
export interface Warmable {
  getOrSet<T>(
    key: string,
    factory: () => T | Promise<T>,
    options?: { ttlMs?: number; graceMs?: number; slidingTtlMs?: number; tags?: readonly string[] },
  ): Promise<T>;
}

/** Loads every key through `cache.getOrSet`, so already-cached keys cost one lookup. */
export async function warmKeys<T>(
  cache: Warmable,
  keys: Iterable<string>,
  loader: (key: string) => T | Promise<T>,
  options: WarmOptions,
): Promise<WarmReport> {
  const list = [...keys];
  const progress: WarmProgress = { total: list.length, done: 0, loaded: 0, skipped: 0, failed: 0 };
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const entryOptions = {
    ttlMs: options.ttlMs,
    graceMs: options.graceMs,
    slidingTtlMs: options.slidingTtlMs,
    tags: options.tags,
  };
  let next = 0;
  const lane = async () => {
    while (next < list.length) {
      const key = list[next]!;
      next += 1;
      let loaded = false;
      try {
        await cache.getOrSet(
          key,
          async () => {
            loaded = true;
            return loader(key);
          },
          entryOptions,
        );
        if (loaded) progress.loaded += 1;
        else progress.skipped += 1;
      } catch {
        progress.failed += 1;
      }
      progress.done += 1;
      options.onProgress?.({ ...progress });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, lane));
  return progress;
}
