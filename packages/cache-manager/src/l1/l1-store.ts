import type { CacheEntry } from '../entry.js';

/** Why an entry left L1 (a metrics label). */
export type RemovalReason = 'evicted' | 'expired' | 'deleted';

/** Called when an entry leaves L1 for any reason other than an overwrite. */
export type RemovalListener = (key: string, entry: CacheEntry, reason: RemovalReason) => void;

/** The in-process tier: decoded entries, bounded by entry count and bytes. */
export interface L1Store {
  /** The policy's name (`lru`, `lfu`, `fifo`, `ttl`, `adaptive`). */
  readonly policy: string;
  /** Entries held. */
  readonly size: number;
  /** Sum of the entries' byte sizes (as given to `set`). */
  readonly bytes: number;
  /** The entry if present and usable at `now` (fresh or in grace); drops it once past grace. */
  get(key: string, now: number): CacheEntry | undefined;
  /**
   * The entry held for `key`, whatever its age, as a look, not a read: no recency or frequency
   * is recorded and nothing is dropped (a bus message asking which write L1 holds, see
   * `applyBusMessage`).
   */
  peek(key: string): CacheEntry | undefined;
  /** Stores an entry of `bytes` bytes; entries larger than the byte budget are not stored. */
  set(key: string, entry: CacheEntry, bytes: number): void;
  /** Removes a key; true when it was present. */
  delete(key: string): boolean;
  /** Removes everything. */
  clear(): void;
  /** The keys held (no particular order). */
  keys(): IterableIterator<string>;
  /** Up to `limit` keys, the ones the policy values most first. */
  hottest(limit: number): string[];
}
