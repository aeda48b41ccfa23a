import type { ConsumeOutcome } from './stores/store.js';

interface Blocked {
  at: number;
  until: number;
  outcome: ConsumeOutcome;
}

/**
 * How long a refusal is remembered at most before the store is asked again: blocks last minutes
 * to hours and a day's limit up to a day, and an `unblock()`, `reset()` or `refund()` made by
 * another instance must not wait for the block's end or the window's to reach this one. One
 * store call per refused key per second is nothing next to the requests it refuses.
 */
export const blockRecheckMs = 1_000;

/**
 * Remembers keys the store refused, until their retry time but at most {@link blockRecheckMs},
 * so that a hot key over its limit is refused locally without a store round trip. Bounded: the
 * oldest entry goes at the cap. Durations come from the store and are measured on the local
 * clock, so clock skew between servers does not matter.
 */
export class LocalBlockCache {
  readonly #entries = new Map<string, Blocked>();
  readonly #maxKeys: number;

  constructor(maxKeys: number) {
    this.#maxKeys = maxKeys;
  }

  /** Remembers a refusal at `now` if it carries a retry time. */
  remember(key: string, outcome: ConsumeOutcome, now: number): void {
    let retryAfterMs = 0;
    for (const decision of outcome.decisions)
      if (!decision.allowed) retryAfterMs = Math.max(retryAfterMs, decision.retryAfterMs);
    if (retryAfterMs <= 0) return;
    retryAfterMs = Math.min(retryAfterMs, blockRecheckMs);
    if (this.#entries.size >= this.#maxKeys && !this.#entries.has(key)) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { at: now, until: now + retryAfterMs, outcome });
  }

  /** The remembered refusal of `key`, its times shifted to `now`, or undefined when none holds. */
  lookup(key: string, now: number): ConsumeOutcome | undefined {
    const blocked = this.#entries.get(key);
    if (blocked === undefined) return undefined;
    const left = blocked.until - now;
    if (left <= 0) {
      this.#entries.delete(key);
      return undefined;
    }
    const elapsed = now - blocked.at;
    return {
      blockedMs: Math.max(0, blocked.outcome.blockedMs - elapsed),
      decisions: blocked.outcome.decisions.map((decision) => ({
        ...decision,
        retryAfterMs: decision.allowed ? 0 : Math.max(0, decision.retryAfterMs - elapsed),
        resetMs: Math.max(0, decision.resetMs - elapsed),
      })),
    };
  }

  /** Forgets `key`. */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
