/**
 * What `ttl(key)` reports of a key held fresh or in grace (cache-manager's `ttl`, cacheable's
 * `getRaw().expires`, as durations from now on the cache's `clock`).
 */
export interface KeyTtl {
  /**
   * Milliseconds of freshness left: `Infinity` for an entry without TTL, 0 once in grace. For
   * a sliding entry, what is left of its current window, i.e. when it expires if nobody reads
   * it again; each read moves that to `slidingMs` from the read, never past `maxTtlMs`.
   */
  ttlMs: number;
  /** True when freshness has ended and the entry is kept only for grace (`get` misses it). */
  inGrace: boolean;
  /** Milliseconds until the entry is gone, grace included (≥ `ttlMs`; `Infinity` without TTL). */
  untilGoneMs: number;
  /** A sliding entry's window (`slidingTtlMs`); absent when the entry does not slide. */
  slidingMs?: number;
  /** A sliding entry's bound: the most `ttlMs` can become (`Infinity` without `ttlMs`). */
  maxTtlMs?: number;
}
