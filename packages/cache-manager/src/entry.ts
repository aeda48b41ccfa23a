/**
 * One cached value with its timing, as held by L1 and (encoded) by L2. Times are clock
 * milliseconds. `expiresAt` ends freshness; `staleUntil` (≥ expiresAt) ends the grace period
 * during which the value may still be served when the factory fails or is slow.
 */
export interface CacheEntry<T = unknown> {
  value: T;
  /** When the value was written. */
  createdAt: number;
  /** End of freshness (`Infinity` when the entry has no TTL). */
  expiresAt: number;
  /** End of the grace period: after this the entry is gone. */
  staleUntil: number;
  /** How long the factory took, in ms: XFetch refreshes slower-to-compute values earlier. */
  computeMs: number;
  /** Tags for `deleteByTag`. */
  tags: readonly string[];
  /**
   * Sliding expiry window in ms (`slidingTtlMs`): each read that hits moves `expiresAt` to
   * `now + slidingMs`, capped by `maxExpiresAt`. Undefined (or 0): the entry does not slide.
   */
  slidingMs?: number;
  /** The end of freshness a sliding entry never passes (`createdAt + ttlMs`, or `Infinity`). */
  maxExpiresAt?: number;
  /**
   * L1 only (never encoded): no early refresh of this copy before this clock time, set after a
   * failed refresh (for `graceBackoffMs`), a back-off copy, or another instance's refresh
   * found in progress. The refresh-ahead threshold's own mark: XFetch's is `computeMs = 0`.
   */
  refreshBlockedUntil?: number;
  /**
   * The id of the write that stored the value (see `WriteIds`), announced by its bus message:
   * a read in flight that answered with this value is not older than that write. Undefined
   * for a value of an earlier release.
   */
  writeId?: number | undefined;
}

/** True while the entry is fresh at `now`. */
export function isFresh(entry: CacheEntry, now: number): boolean {
  return now < entry.expiresAt;
}

/**
 * Probabilistic early refresh (XFetch, Vattani et al. 2015): returns true when a fresh entry
 * should be recomputed now. The chance rises smoothly towards expiry and with the compute
 * time, so concurrent readers rarely all decide at once. `random` returns a value in (0, 1].
 * A sliding entry is refreshed ahead of its bound, not its window (see {@link refreshTarget}).
 */
export function shouldRefreshEarly(
  entry: CacheEntry,
  now: number,
  beta: number,
  random: () => number,
): boolean {
  const expiresAt = refreshTarget(entry);
  if (beta <= 0 || !Number.isFinite(expiresAt) || entry.computeMs <= 0) return false;
  const draw = random();
  const safe = draw <= 0 ? Number.MIN_VALUE : draw;
  return now - entry.computeMs * beta * Math.log(safe) >= expiresAt;
}

/**
 * Refresh-ahead (cache-manager v7's `refreshThreshold`): true when a fresh entry with an expiry
 * has less than `thresholdMs` of freshness left at `now` (a sliding one: less than that to its
 * bound), unless a failed refresh blocked it until later (`refreshBlockedUntil`).
 */
export function shouldRefreshAhead(entry: CacheEntry, now: number, thresholdMs: number): boolean {
  if (thresholdMs <= 0) return false;
  const target = refreshTarget(entry);
  if (!Number.isFinite(target) || target - now >= thresholdMs) return false;
  return entry.refreshBlockedUntil === undefined || now >= entry.refreshBlockedUntil;
}

/**
 * The expiry early refresh aims at: the end of freshness, or for a sliding entry its bound
 * (`Infinity` without one), since reads keep moving the end of its window.
 */
export function refreshTarget(entry: CacheEntry): number {
  return entry.slidingMs ? entry.maxExpiresAt! : entry.expiresAt;
}

/**
 * Builds an entry written at `now` with the given TTL and grace (ms; TTL ≤ 0 or absent means
 * none). With a sliding window (`slidingMs` > 0) it is fresh for that window, at most until
 * the TTL ends. `writeId`: the id of the write that stores it (see `WriteIds`).
 */
export function createEntry<T>(
  value: T,
  now: number,
  ttlMs: number | undefined,
  graceMs: number,
  computeMs: number,
  tags: readonly string[],
  slidingMs = 0,
  writeId?: number,
): CacheEntry<T> {
  const maxExpiresAt = ttlMs === undefined || ttlMs <= 0 ? Number.POSITIVE_INFINITY : now + ttlMs;
  const expiresAt = slidingMs > 0 ? Math.min(now + slidingMs, maxExpiresAt) : maxExpiresAt;
  const sliding = slidingMs > 0;
  // Every entry carries the sliding fields (undefined when it does not slide), so all share
  // one shape and the read paths stay monomorphic.
  return {
    value,
    createdAt: now,
    expiresAt,
    staleUntil: expiresAt + graceMs,
    computeMs,
    tags,
    slidingMs: sliding ? slidingMs : undefined,
    maxExpiresAt: sliding ? maxExpiresAt : undefined,
    writeId,
  };
}

/**
 * A read hit a sliding entry at `now`: its freshness moves to `now + slidingMs`, capped by
 * `maxExpiresAt`, and its grace follows (the same length after the new expiry). Never moves
 * freshness back. In place: the read paths allocate nothing, and the entry is the one L1 holds.
 * Callers check `entry.slidingMs` first (most entries do not slide).
 */
export function slideEntry(entry: CacheEntry, now: number): void {
  const slidingMs = entry.slidingMs ?? 0;
  if (slidingMs <= 0) return;
  const next = Math.min(now + slidingMs, entry.maxExpiresAt ?? Number.POSITIVE_INFINITY);
  if (next <= entry.expiresAt) return;
  entry.staleUntil = next + (entry.staleUntil - entry.expiresAt);
  entry.expiresAt = next;
}

/**
 * The later written of two copies of a key's value (by `createdAt`; `a` on a tie), either
 * possibly absent: what a read-through serves in grace when L1 and L2 hold different ones.
 */
export function newerEntry(a: CacheEntry | undefined, b: CacheEntry | undefined): CacheEntry | undefined {
  if (!a || !b) return a ?? b;
  return b.createdAt > a.createdAt ? b : a;
}

/**
 * The entry as if it had expired at `now` (`expire`, `expireByTag`): freshness ends now and its
 * grace follows, as for an entry that expires naturally, so a grace of 0 makes it a miss
 * (`staleUntil` ≤ `now`: callers drop it). The grace is the entry's own (`staleUntil -
 * expiresAt`); an entry without TTL does not record one (both are infinite), so it gets
 * `defaultGraceMs` (the cache's `graceMs`). The grace window never outlasts the original one.
 * Returns undefined when the entry is already past its freshness: nothing to change.
 */
export function expireEntry<T>(
  entry: CacheEntry<T>,
  now: number,
  defaultGraceMs: number,
): CacheEntry<T> | undefined {
  if (!isFresh(entry, now)) return undefined;
  const graceMs = Number.isFinite(entry.expiresAt) ? entry.staleUntil - entry.expiresAt : defaultGraceMs;
  // An expired entry stops sliding: only a new value is fresh again.
  return {
    ...entry,
    expiresAt: now,
    staleUntil: Math.min(entry.staleUntil, now + graceMs),
    slidingMs: undefined,
    maxExpiresAt: undefined,
  };
}

/**
 * The tags of an entry of `fullKey` as stored (`tagScope: 'namespace'`): a namespaced key's
 * (`:<a>:<b>::<key>`) tags are prefixed with its path and `::` (`:a:b::<tag>`), as its key is; a
 * root key's stay as given, but for one starting with `:`, which becomes `::<tag>` (as a root
 * key does) so that no root tag names a namespace's. No allocation when nothing changes.
 */
export function scopeTags(fullKey: string, tags: readonly string[]): readonly string[] {
  if (tags.length === 0) return tags;
  // A namespaced full key starts with `:` then a name (never empty); `::` starts a root key.
  const namespaced = fullKey.charCodeAt(0) === 58 && fullKey.charCodeAt(1) !== 58;
  if (namespaced) {
    const prefix = fullKey.slice(0, fullKey.indexOf('::') + 2);
    return tags.map((tag) => prefix + tag);
  }
  let escaped = false;
  for (const tag of tags) if (tag.charCodeAt(0) === 58) escaped = true;
  return escaped ? tags.map((tag) => (tag.charCodeAt(0) === 58 ? `::${tag}` : tag)) : tags;
}
