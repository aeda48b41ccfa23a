import { admitted, type ConsumeOutcome } from './stores/store.js';

interface Blocked {
  at: number;
  /** When the store is asked again: the refusal's end, or {@link blockRecheckMs} after `at`. */
  until: number;
  /** When the refusal itself ends, as the store said (later than `until` when capped). */
  refusedUntil: number;
  /** One check went to the store for the recheck and has not been answered yet. */
  rechecking: boolean;
  outcome: ConsumeOutcome;
  /**
   * The cost the store refused, or undefined when the refusal holds for any cost (a block). Past
   * a block, a smaller cost may fit in what the key has left (a cost of 0 always does), and a
   * larger one waits longer than the refusal says: only a check of this cost is answered here.
   */
  cost: number | undefined;
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
 * entry remembered longest ago goes at the cap. Durations come from the store and are measured
 * on the local clock, so clock skew between servers does not matter. A recheck is one check: the key's other
 * checks are refused from the cache until its answer ({@link settle}), as the refusal still
 * holds as far as anyone here knows; else a hot key sent a call per tick for as long as the
 * recheck took, the most when the store is slow.
 */
export class LocalBlockCache {
  readonly #entries = new Map<string, Blocked>();
  readonly #maxKeys: number;
  readonly #answersBlocksOnly: boolean;

  /**
   * `answersBlocksOnly` (auto-block on): every refusal must reach the store, which counts it as a
   * violation, so only a block is answered here; a refused key answered here for a second was
   * counted once a second, and a client hammering it was never blocked (`violations` above
   * `withinMs` in seconds), and a block only until it ends. A refusal is still remembered, for
   * the fail mode ({@link settle}).
   */
  constructor(maxKeys: number, answersBlocksOnly = false) {
    this.#maxKeys = maxKeys;
    this.#answersBlocksOnly = answersBlocksOnly;
  }

  /**
   * Remembers a refusal of a request of `cost` at `now` if it carries a retry time (else forgets
   * the key's); `cost` undefined: the refusal holds for every cost (a block set by `block()`).
   */
  remember(key: string, outcome: ConsumeOutcome, now: number, cost?: number): void {
    let retryAfterMs = 0;
    for (const decision of outcome.decisions)
      if (!decision.allowed) retryAfterMs = Math.max(retryAfterMs, decision.retryAfterMs);
    if (retryAfterMs <= 0) {
      this.#entries.delete(key);
      return;
    }
    // Re-inserted, not updated in place: a Map keeps first-insertion order, and the cap drops the
    // first entry, which would be a hot key refused every second since long before the others.
    if (!this.#entries.delete(key) && this.#entries.size >= this.#maxKeys) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, {
      at: now,
      until: now + Math.min(retryAfterMs, blockRecheckMs),
      refusedUntil: now + retryAfterMs,
      rechecking: false,
      outcome,
      cost,
    });
  }

  /**
   * The answer to a check of `key`, which may be the recheck {@link lookup} let through. From the
   * store: a refusal is remembered anew, an admission ends the remembered refusal. From the fail
   * mode (the store unreachable): the refusal the store gave last still holds until its end (no
   * instance can lift it in the store meanwhile), so it is returned, shifted to `now`, for the
   * caller to answer with instead (else an outage lifted a known block: `'open'` admitted an
   * abuser, `'closed'` answered 503 for a 429), and the store is asked again a recheck later.
   */
  settle(
    key: string,
    outcome: ConsumeOutcome,
    fromStore: boolean,
    now: number,
    cost?: number,
  ): ConsumeOutcome | undefined {
    if (fromStore) {
      if (!admitted(outcome)) this.remember(key, outcome, now, cost);
      // A cost of 0 changed nothing: what the key refused still holds.
      else if (this.#entries.size > 0 && cost !== 0) this.#entries.delete(key);
      return undefined;
    }
    const blocked = this.#entries.size === 0 ? undefined : this.#entries.get(key);
    if (blocked === undefined) return undefined;
    if (now >= blocked.refusedUntil) {
      this.#entries.delete(key);
      return undefined;
    }
    // A smaller cost than the one refused may have fitted: the fail mode answers it. A larger one
    // is refused too (its retry time is at least the one remembered).
    if (cost !== undefined && blocked.cost !== undefined && cost < blocked.cost && !isBlocked(blocked, now))
      return undefined;
    blocked.rechecking = false;
    blocked.until = now + Math.min(blocked.refusedUntil - now, blockRecheckMs);
    // The store cannot be asked: a block's retry time for another cost is exact when the windows
    // admit that cost, else the remembered one is the best known.
    return (cost === undefined ? undefined : blockedFor(blocked, now, cost)) ?? shifted(blocked, now);
  }

  /**
   * The remembered refusal of `key` for a request of `cost`, its times shifted to `now`, or
   * undefined when none holds. Past a block, only a request of the cost refused is answered here:
   * a smaller one may fit, and a larger one's retry time is later than the one remembered, so the
   * store decides those. During a block, a request of another cost is refused too, but its retry
   * time is the later of the block's end and its windows' for that cost, which the remembered
   * refusal (of another cost: `block()`'s is of cost 0) does not say: it is answered here only when
   * every window admits that cost (the retry time is then the block's end), else by the store.
   * `cost` undefined: any remembered refusal (a request refused anyway).
   */
  lookup(key: string, now: number, cost?: number): ConsumeOutcome | undefined {
    const blocked = this.#entries.get(key);
    if (blocked === undefined) return undefined;
    if (cost !== undefined && blocked.cost !== undefined && cost !== blocked.cost && !isBlocked(blocked, now))
      return undefined;
    // A block is answered until its own end, not the refusal's: a spent window refuses for longer,
    // and those refusals are the store's to count.
    if (this.#answersBlocksOnly && now - blocked.at >= blocked.outcome.blockedMs) return undefined;
    if (now >= blocked.until) {
      // Past the refusal's own end, or a recheck unanswered for a whole recheck period (its
      // answer is lost): the store decides again.
      if (now >= blocked.refusedUntil || (blocked.rechecking && now >= blocked.until + blockRecheckMs)) {
        this.#entries.delete(key);
        return undefined;
      }
      if (!blocked.rechecking) {
        blocked.rechecking = true;
        return undefined;
      }
    }
    if (cost !== undefined && cost !== blocked.cost) return blockedFor(blocked, now, cost);
    return shifted(blocked, now);
  }

  /** Forgets `key`. */
  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

/** Whether the remembered refusal's block (if any) still holds at `now`. */
function isBlocked(blocked: Blocked, now: number): boolean {
  return now - blocked.at < blocked.outcome.blockedMs;
}

/**
 * The remembered block's answer at `now` to a request of `cost` (another cost than the one it
 * refused), when it is known without the store: every limit has `cost` left, so each refuses it
 * only until the block ends. Undefined when a limit has less: its retry time for `cost` may be
 * later than the block's end, and only the store knows it.
 */
function blockedFor(blocked: Blocked, now: number, cost: number): ConsumeOutcome | undefined {
  if (!isBlocked(blocked, now)) return undefined;
  for (const decision of blocked.outcome.decisions) if (decision.remaining < cost) return undefined;
  const outcome = shifted(blocked, now);
  for (const decision of outcome.decisions) decision.retryAfterMs = outcome.blockedMs;
  return outcome;
}

/** The remembered refusal with its times shifted to `now`. */
function shifted(blocked: Blocked, now: number): ConsumeOutcome {
  const elapsed = now - blocked.at;
  return {
    blockedMs: Math.max(0, blocked.outcome.blockedMs - elapsed),
    decisions: blocked.outcome.decisions.map((decision) => ({
      ...decision,
      retryAfterMs: decision.allowed ? 0 : Math.max(0, decision.retryAfterMs - elapsed),
      resetMs: Math.max(0, decision.resetMs - elapsed),
      nextMs: Math.max(0, decision.nextMs - elapsed),
    })),
  };
}
