import { AsyncLocalStorage } from 'node:async_hooks';

interface SessionContext {
  key: string | undefined;
  writeUntil: number;
}

/**
 * Read-your-writes bookkeeping: after a write, the writing session's reads stay on the
 * primary for `windowMs`. A session is a caller-given key (a user id, a request id) or the
 * async context opened by `run()`.
 */
export class SessionTracker {
  readonly #windowMs: number;
  readonly #byKey = new Map<string, number>();
  // One storage per tracker: a session opened on one pool does not pin another pool's reads.
  readonly #storage = new AsyncLocalStorage<SessionContext>();

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  /** Runs `fn` in a session context; writes inside it pin its later reads to the primary. */
  run<R>(key: string | undefined, fn: () => R): R {
    return this.#storage.run({ key, writeUntil: 0 }, fn);
  }

  /** Records a write by `key` (or by the current async session) at time `now`. */
  noteWrite(key: string | undefined, now: number): void {
    if (this.#windowMs === 0) return;
    const context = this.#storage.getStore();
    const until = now + this.#windowMs;
    if (context !== undefined) context.writeUntil = until;
    const sessionKey = key ?? context?.key;
    if (sessionKey === undefined) return;
    if (this.#byKey.size >= 10_000) this.#prune(now);
    this.#byKey.set(sessionKey, until);
  }

  /** True when the session wrote within the window, so its reads must see the primary. */
  mustReadPrimary(key: string | undefined, now: number): boolean {
    if (this.#windowMs === 0) return false;
    const context = this.#storage.getStore();
    if (context !== undefined && context.writeUntil > now) return true;
    const sessionKey = key ?? context?.key;
    if (sessionKey === undefined || this.#byKey.size === 0) return false;
    const until = this.#byKey.get(sessionKey);
    return until !== undefined && until > now;
  }

  #prune(now: number): void {
    for (const [key, until] of this.#byKey) if (until <= now) this.#byKey.delete(key);
    // Still full of live sessions: drop the oldest half rather than grow without bound.
    if (this.#byKey.size >= 10_000) {
      let drop = this.#byKey.size / 2;
      for (const key of this.#byKey.keys()) {
        if (drop-- <= 0) break;
        this.#byKey.delete(key);
      }
    }
  }
}
