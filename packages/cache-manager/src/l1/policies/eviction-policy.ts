/**
 * The bookkeeping of one eviction policy over string keys. A policy never holds values: the
 * store owns them and asks the policy which keys to drop. Every method is O(1) amortised
 * except where a policy documents otherwise.
 */
export interface EvictionPolicy {
  /** Name shown in metrics and the hit-rate table. */
  readonly name: string;
  /** Records a read of a key the store holds. */
  touch(key: string): void;
  /** Records a read of a key the store does not hold (admission policies learn from misses). */
  recordMiss(key: string): void;
  /**
   * Records a new key. Returns the keys the store must drop to stay within the entry budget;
   * an admission policy may return the new key itself (it was not admitted).
   */
  insert(key: string, expiresAt: number): string[];
  /** Records an overwrite of a key the store holds (new expiry). */
  update(key: string, expiresAt: number): void;
  /** Forgets a key the store removed for its own reasons (delete, expiry, byte budget). */
  remove(key: string): void;
  /** The next key to drop when the store is over its byte budget. */
  victim(): string | undefined;
  /** Forgets everything. */
  clear(): void;
  /** Up to `limit` keys, most valuable to keep first (for saving the hot set across restarts). */
  hottest(limit: number): string[];
  /**
   * Optional: receives the store's view of a held key's current expiry. An entry's expiry may
   * move after it was recorded (a read slides a sliding entry in place, without telling the
   * policy); a policy that orders by expiry asks before it names a victim.
   */
  watchExpiry?(currentExpiry: (key: string) => number | undefined): void;
}
