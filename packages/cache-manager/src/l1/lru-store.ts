import { LRUCache } from 'lru-cache';
import type { CacheEntry } from '../entry.js';
import type { L1Store, RemovalListener, RemovalReason } from './l1-store.js';

/** The `lru` L1 store, on lru-cache (entry and byte bounds; expiry checked against our clock). */
export class LruStore implements L1Store {
  readonly policy = 'lru';
  readonly #cache: LRUCache<string, CacheEntry>;
  readonly #onRemove: RemovalListener;
  #removalReason: RemovalReason | undefined;

  constructor(maxEntries: number, maxBytes: number, onRemove: RemovalListener) {
    this.#onRemove = onRemove;
    this.#cache = new LRUCache<string, CacheEntry>({
      max: maxEntries,
      maxSize: maxBytes,
      // Sizes are always passed to set(); this is only lru-cache's required fallback.
      sizeCalculation: () => 1,
      // disposeAfter, not dispose: lru-cache calls dispose before it updates its sizes, and the
      // listener reads them (the L1 gauges).
      disposeAfter: (entry, key, reason) => {
        if (reason === 'set') return; // an overwrite, not a removal
        const mapped: RemovalReason = this.#removalReason ?? (reason === 'evict' ? 'evicted' : 'deleted');
        this.#onRemove(key, entry, mapped);
      },
    });
  }

  get size(): number {
    return this.#cache.size;
  }

  get bytes(): number {
    return this.#cache.calculatedSize;
  }

  get(key: string, now: number): CacheEntry | undefined {
    const entry = this.#cache.get(key);
    if (entry === undefined) return undefined;
    if (now >= entry.staleUntil) {
      this.#removalReason = 'expired';
      this.#cache.delete(key);
      this.#removalReason = undefined;
      return undefined;
    }
    return entry;
  }

  peek(key: string): CacheEntry | undefined {
    return this.#cache.peek(key);
  }

  set(key: string, entry: CacheEntry, bytes: number): void {
    if (bytes > this.#cache.maxSize) {
      this.delete(key);
      return;
    }
    this.#cache.set(key, entry, { size: Math.max(1, bytes) });
  }

  delete(key: string): boolean {
    return this.#cache.delete(key);
  }

  clear(): void {
    this.#cache.clear();
  }

  keys(): IterableIterator<string> {
    return this.#cache.keys();
  }

  hottest(limit: number): string[] {
    const keys: string[] = [];
    // lru-cache iterates most recently used first.
    for (const key of this.#cache.keys()) {
      if (keys.length >= limit) break;
      keys.push(key);
    }
    return keys;
  }
}
