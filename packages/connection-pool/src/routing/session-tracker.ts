import { AsyncLocalStorage } from 'node:async_hooks';

interface SessionContext {
  key: string | undefined;
  writeUntil: number;
}

/** Keyed sessions tracked at once (each costs a Map entry for `windowMs` after its write). */
const maxSessions = 10_000;

/**
 * Read-your-writes bookkeeping: after a write, the writing session's reads stay on the
 * primary for `windowMs`. A session is a caller-given key (a user id, a request id) or the
 * async context opened by `run()`.
 */
export class SessionTracker {
  readonly #windowMs: number;
  readonly #byKey = new Map<string, number>();
  /**
   * Until when sessions forgotten to bound memory (more than `maxSessions` wrote within one
   * window) may still be in their window: a keyed session not found is pinned until then.
   */
  #forgottenUntil = 0;
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
    if (this.#byKey.size >= maxSessions) this.#prune(now);
    // Re-inserted, so the Map's order is the order of last writes: pruning drops the stalest.
    this.#byKey.delete(sessionKey);
    this.#byKey.set(sessionKey, until);
  }

  /** True when the session wrote within the window, so its reads must see the primary. */
  mustReadPrimary(key: string | undefined, now: number): boolean {
    if (this.#windowMs === 0) return false;
    const context = this.#storage.getStore();
    if (context !== undefined && context.writeUntil > now) return true;
    const sessionKey = key ?? context?.key;
    if (sessionKey === undefined) return false;
    const until = this.#byKey.get(sessionKey);
    if (until !== undefined) return until > now;
    // Maybe one of the forgotten: err to the primary, as routing does when unsure.
    return this.#forgottenUntil > now;
  }

  #prune(now: number): void {
    for (const [key, until] of this.#byKey) if (until <= now) this.#byKey.delete(key);
    // Still full of live sessions: forget the half that wrote longest ago rather than grow
    // without bound, and pin every unknown keyed session until their windows have passed.
    if (this.#byKey.size >= maxSessions) {
      let drop = this.#byKey.size / 2;
      for (const [key, until] of this.#byKey) {
        if (drop-- <= 0) break;
        this.#byKey.delete(key);
        if (until > this.#forgottenUntil) this.#forgottenUntil = until;
      }
    }
  }
}
