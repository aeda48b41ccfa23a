/**
 * Callers waiting for another instance's lease on a key: each sleeps until its poll interval
 * ends or a bus message about the key (a value written, a lease released) wakes it earlier.
 * A wait is registered for its whole length, not only while it sleeps, so a message that
 * arrives while the waiter is busy reading Redis is not lost: its next sleep returns at once,
 * and a failed holder stays known to it.
 */
export class KeyWakeups {
  readonly #waits = new Map<string, Set<KeyWait>>();

  /** Starts waiting on `fullKey`'s lease holder; call {@link KeyWait.end} when done. */
  watch(fullKey: string): KeyWait {
    let waits = this.#waits.get(fullKey);
    if (!waits) {
      waits = new Set();
      this.#waits.set(fullKey, waits);
    }
    const wait = new KeyWait(() => {
      const set = this.#waits.get(fullKey);
      set?.delete(wait);
      if (set?.size === 0) this.#waits.delete(fullKey);
    });
    waits.add(wait);
    return wait;
  }

  /** Wakes the waits on `fullKey`; `holderFailed` when its holder's factory threw. */
  wake(fullKey: string, holderFailed = false): void {
    const waits = this.#waits.get(fullKey);
    if (!waits) return;
    for (const wait of [...waits]) wait.wake(holderFailed);
  }

  /** Wakes every waiter (on close, so none sleeps past it). */
  wakeAll(): void {
    for (const wait of [...this.#waits.values()].flatMap((set) => [...set])) wait.wake(false);
  }
}

/** One caller's wait for a key's lease holder (see {@link KeyWakeups.watch}). */
export class KeyWait {
  readonly #unregister: () => void;
  #holderFailed = false;
  /** Woken while not asleep: the next sleep returns at once. */
  #pendingWake = false;
  #sleeper: { resolve: () => void; timer: NodeJS.Timeout } | undefined;

  constructor(unregister: () => void) {
    this.#unregister = unregister;
  }

  /** True once a holder of the key reported that its factory failed, since the wait began. */
  get holderFailed(): boolean {
    return this.#holderFailed;
  }

  /** Resolves after `ms`, or sooner when woken (at once when woken since the last sleep). */
  sleep(ms: number): Promise<void> {
    if (this.#pendingWake) {
      this.#pendingWake = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#stopSleeping(), ms);
      timer.unref();
      this.#sleeper = { resolve, timer };
    });
  }

  wake(holderFailed: boolean): void {
    if (holderFailed) this.#holderFailed = true;
    if (this.#sleeper) this.#stopSleeping();
    else this.#pendingWake = true;
  }

  /** Unregisters the wait (and ends a sleep in progress). */
  end(): void {
    this.#unregister();
    if (this.#sleeper) this.#stopSleeping();
  }

  #stopSleeping(): void {
    const sleeper = this.#sleeper;
    if (!sleeper) return;
    this.#sleeper = undefined;
    clearTimeout(sleeper.timer);
    sleeper.resolve();
  }
}
