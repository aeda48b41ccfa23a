/**
 * Callers parked in a provider's `waitForWork`: each wakes on `wakeAll()` (new work, close),
 * on its abort signal or after its timeout, whichever comes first.
 */
export class Wakers {
  readonly #parked = new Set<() => void>();

  /** Resolves on the next `wakeAll()`, when `signal` aborts or after `timeoutMs`. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#parked.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      signal.addEventListener('abort', done, { once: true });
      this.#parked.add(done);
    });
  }

  /** Wakes every parked caller. */
  wakeAll(): void {
    // Called for every delivery: skip the Set iterator when nobody waits (the usual case).
    if (this.#parked.size === 0) return;
    for (const wake of this.#parked) wake();
    this.#parked.clear();
  }
}
