/**
 * A factory run in progress. A write, delete, expire, tag delete or tag expire, or clear that
 * reaches its key while it runs (here or, through the bus, on another instance) supersedes it:
 * the factory may have read the source before the change, so its result goes to its callers
 * but is not cached over the newer state.
 */
export interface FactoryRun {
  /** The call's tags, or those the factory set through its context. */
  tags: readonly string[];
  /**
   * `wait`: a lease waiter watching the key for changes (see `computeOnce`), not a factory run.
   * `write`: an L2 write waiting, unsent, for the chunks before it (see `sendWrites`), which a
   * change of its key made meanwhile supersedes: that change went out first, and the write, sent
   * after it, brought back the value it replaced.
   */
  readonly kind: 'run' | 'wait' | 'write';
  superseded: boolean;
  /**
   * The bus lost its connection while it ran, or was not subscribed when it started: a message
   * that would have superseded it may have been lost. Unlike `superseded` this is no proof of a change: the run checks L2
   * before caching (see `runFactory`).
   */
  suspect: boolean;
  /**
   * The id of the write whose value the run read in L2 and replaces by compare-and-set (see
   * `KeyLoad.l2Held`; a `getOrSetMany` run's, per key, `ManyLoad.held`). That write's bus message, arriving while the run lasts (late:
   * under load, or across a Cluster's nodes), announces no change since the read, so it does
   * not supersede the run; a later change does, and the compare-and-set refuses the write of a
   * run whose message has not come. Superseded by it, a `forceFresh` run cached nothing: the
   * instance and L2 kept the value it was asked to replace.
   */
  replaces?: number | undefined;
}

/** The factory runs in progress, by full key, and what supersedes them. */
export class FactoryRuns {
  readonly #runs = new Map<string, Set<FactoryRun>>();
  /**
   * True while the bus is not subscribed (from its connection's close to the resync): a run
   * started then is suspect from its start, as one the close happened during. One that also
   * ended before the resync was marked by neither and cached over a change lost meanwhile.
   * A function (the bus's `awaitingResync`), read once per run, not per call.
   */
  readonly #busDown: () => boolean;

  constructor(busDown: () => boolean = () => false) {
    this.#busDown = busDown;
  }

  /** Records a run (or a wait) of `fullKey` with `tags`; end it with {@link end}. */
  start(fullKey: string, tags: readonly string[], kind: FactoryRun['kind'] = 'run'): FactoryRun {
    // Waits are left out, as by `connectionLost`.
    const run: FactoryRun = { tags, kind, superseded: false, suspect: kind === 'run' && this.#busDown() };
    let runs = this.#runs.get(fullKey);
    if (!runs) {
      runs = new Set();
      this.#runs.set(fullKey, runs);
    }
    runs.add(run);
    return run;
  }

  end(fullKey: string, run: FactoryRun): void {
    const runs = this.#runs.get(fullKey);
    if (!runs) return;
    runs.delete(run);
    if (runs.size === 0) this.#runs.delete(fullKey);
  }

  /**
   * A write, delete or expire of `fullKey`; `writeId`: the write a bus `set` message announces,
   * which does not supersede a run that read its value (see {@link FactoryRun.replaces}).
   */
  supersedeKey(fullKey: string, writeId?: number): void {
    if (this.#runs.size === 0) return;
    for (const run of this.#runs.get(fullKey) ?? []) {
      if (writeId !== undefined && run.replaces === writeId) continue;
      run.superseded = true;
    }
  }

  /** A delete or expire of any of `tags`. */
  supersedeTags(tags: readonly string[]): void {
    if (this.#runs.size === 0) return;
    for (const runs of this.#runs.values()) {
      for (const run of runs) if (run.tags.some((tag) => tags.includes(tag))) run.superseded = true;
    }
  }

  /** The bus subscribed again: every run and wait in progress may have missed a message. */
  suspectAll(): void {
    for (const runs of this.#runs.values()) for (const run of runs) run.suspect = true;
  }

  /**
   * The bus lost its connection: every factory run in progress may miss a message from now
   * on. Marked now, not only once the bus subscribes again: a run that ended in between cached
   * over the change it missed. Waits are left to {@link suspectAll}: a suspect waiter trusts
   * only L2's value in grace, and with all of Redis down its next poll fails, so it would lose
   * the value it serves when the factory then fails.
   */
  connectionLost(): void {
    for (const runs of this.#runs.values()) {
      for (const run of runs) if (run.kind === 'run') run.suspect = true;
    }
  }

  /** A clear of the keys under `fullPrefix`. */
  supersedePrefix(fullPrefix: string): void {
    if (this.#runs.size === 0) return;
    for (const [key, runs] of this.#runs) {
      if (key.startsWith(fullPrefix)) for (const run of runs) run.superseded = true;
    }
  }
}
