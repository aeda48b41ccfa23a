import type { ConfigError } from '@noa/core';
import type { FactoryContext, SetOptions } from './cache-options.js';
import { checkFactoryOptions } from './call-options.js';

/** What a factory run decided about its own entry (read by the engine once it returns). */
interface FactoryRunState {
  /** Tags of the run, so a `deleteByTag` while it runs supersedes it (see `FactoryRun`). */
  tags: readonly string[];
}

/**
 * The context of one factory run: the stale value, and the entry options the factory chose
 * from what it computed. Options are validated when set, so a bad value fails in the factory's
 * own stack, naming the field.
 */
export class FactoryRunContext<T> implements FactoryContext<T> {
  readonly key: string;
  readonly staleValue: T | undefined;
  readonly signal: AbortSignal;
  readonly #run: FactoryRunState;
  #options: SetOptions | undefined;
  #skipped = false;
  /** The errors `setOptions` threw: a caller's mistake, never served over with a stale value. */
  readonly #rejections = new Set<ConfigError>();

  /** The tags as stored (scoped to the key's namespace), for the run's watch. */
  readonly #storedTags: (tags: readonly string[]) => readonly string[];

  constructor(
    key: string,
    staleValue: T | undefined,
    run: FactoryRunState,
    /** Aborted when `close()` stops waiting for the run (see `CacheEngine.runSignal`), or as it is given up (see `abandonRun`). */
    signal: AbortSignal,
    storedTags: (tags: readonly string[]) => readonly string[] = (tags) => tags,
  ) {
    this.key = key;
    this.staleValue = staleValue;
    this.signal = signal;
    this.#run = run;
    this.#storedTags = storedTags;
  }

  setOptions(options: SetOptions): void {
    try {
      checkFactoryOptions(options);
    } catch (error) {
      this.#rejections.add(error as ConfigError);
      throw error;
    }
    // A field given as undefined is not set (as in the call's options): spread as is, it would
    // replace the call's value, or an earlier one, with the cache's default.
    const chosen: Record<string, unknown> = { ...this.#options };
    for (const [field, value] of Object.entries(options)) if (value !== undefined) chosen[field] = value;
    this.#options = chosen as SetOptions;
    if (options.tags !== undefined) this.#run.tags = this.#storedTags(options.tags);
  }

  skip(): void {
    this.#skipped = true;
  }

  /** The options set by the factory (undefined when it set none). */
  get options(): SetOptions | undefined {
    return this.#options;
  }

  /** True when the factory declined caching its result. */
  get skipped(): boolean {
    return this.#skipped;
  }

  /** True when `error` is one `setOptions` threw (and the factory let through). */
  rejected(error: unknown): error is ConfigError {
    return this.#rejections.has(error as ConfigError);
  }
}
