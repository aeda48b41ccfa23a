import type { CacheEntry } from './entry.js';

/** What is remembered of one key's busy lease: until when, and for which value. */
interface BusyLease {
  until: number;
  writeId: number | undefined;
  createdAt: number;
}

/** Past this many keys, expired ones are swept on the next `remember` (amortised: no timer). */
const sweepAbove = 1_024;

/**
 * An L2-only cache's memory of refresh leases another instance held: for `lock.pollMs`, or until
 * the key's value changes, a hit that finds the key due for an early refresh does not ask for the
 * lease again (a SET NX that fails while the holder refreshes). With L1 the entry itself carries
 * that back-off (`refreshBlockedUntil`), but an L2-only cache decodes a new entry on every hit.
 */
export class BusyLeases {
  readonly #byKey = new Map<string, BusyLease>();

  /** Remembers that the lease of `fullKey` was busy when its value was `entry`, until `until`. */
  remember(fullKey: string, entry: CacheEntry, until: number, now: number): void {
    if (this.#byKey.size >= sweepAbove) {
      for (const [key, lease] of this.#byKey) if (lease.until <= now) this.#byKey.delete(key);
    }
    this.#byKey.set(fullKey, { until, writeId: entry.writeId, createdAt: entry.createdAt });
  }

  /** Whether the lease of `fullKey` is remembered busy at `now` for this same value (`entry`). */
  busy(fullKey: string, entry: CacheEntry, now: number): boolean {
    const lease = this.#byKey.get(fullKey);
    if (lease === undefined) return false;
    // Ids are unique per write; `createdAt` only for a value without one (the previous release's).
    const same =
      lease.writeId !== undefined && entry.writeId !== undefined
        ? lease.writeId === entry.writeId
        : lease.createdAt === entry.createdAt;
    if (now < lease.until && same) return true;
    this.#byKey.delete(fullKey);
    return false;
  }

  get size(): number {
    return this.#byKey.size;
  }
}
