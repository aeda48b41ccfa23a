/**
 * Callers waiting for another instance's lease on a key: each sleeps until its poll interval
 * ends or a bus message about the key (a value written, a lease released) wakes it earlier.
 */
export class KeyWakeups {
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Resolves after `ms`, or sooner when {@link wake} is called for `fullKey`. */
  sleepOrWake(fullKey: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let waiters = this.#waiters.get(fullKey);
      if (!waiters) {
        waiters = new Set();
        this.#waiters.set(fullKey, waiters);
      }
      const done = () => {
        clearTimeout(timer);
        const set = this.#waiters.get(fullKey);
        set?.delete(done);
        if (set?.size === 0) this.#waiters.delete(fullKey);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      waiters.add(done);
    });
  }

  wake(fullKey: string): void {
    const waiters = this.#waiters.get(fullKey);
    if (!waiters) return;
    for (const wake of [...waiters]) wake();
  }

  /** Wakes every waiter (on close, so none sleeps past it). */
  wakeAll(): void {
    for (const wake of [...this.#waiters.values()].flatMap((set) => [...set])) wake();
  }
}
