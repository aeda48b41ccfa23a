import type { CacheEntry } from '../entry.js';
import type { L1Store, RemovalListener } from './l1-store.js';
import type { EvictionPolicy } from './policies/eviction-policy.js';

interface Slot {
  entry: CacheEntry;
  bytes: number;
}

/** An L1 store on a `Map`, with any {@link EvictionPolicy} deciding what to drop. */
export class PolicyStore implements L1Store {
  readonly #slots = new Map<string, Slot>();
  readonly #policy: EvictionPolicy;
  readonly #maxBytes: number;
  readonly #onRemove: RemovalListener;
  #bytes = 0;

  constructor(policy: EvictionPolicy, maxBytes: number, onRemove: RemovalListener) {
    this.#policy = policy;
    this.#maxBytes = maxBytes;
    this.#onRemove = onRemove;
    policy.watchExpiry?.((key) => this.#slots.get(key)?.entry.expiresAt);
  }

  get policy(): string {
    return this.#policy.name;
  }

  get size(): number {
    return this.#slots.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(key: string, now: number): CacheEntry | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) {
      this.#policy.recordMiss(key);
      return undefined;
    }
    if (now >= slot.entry.staleUntil) {
      this.#remove(key, slot, 'expired');
      this.#policy.recordMiss(key);
      return undefined;
    }
    this.#policy.touch(key);
    return slot.entry;
  }

  peek(key: string): CacheEntry | undefined {
    return this.#slots.get(key)?.entry;
  }

  set(key: string, entry: CacheEntry, bytes: number): void {
    if (bytes > this.#maxBytes) {
      this.delete(key);
      return;
    }
    const existing = this.#slots.get(key);
    if (existing) {
      this.#bytes += bytes - existing.bytes;
      existing.entry = entry;
      existing.bytes = bytes;
      this.#policy.update(key, entry.expiresAt);
    } else {
      this.#slots.set(key, { entry, bytes });
      this.#bytes += bytes;
      for (const victim of this.#policy.insert(key, entry.expiresAt)) {
        const slot = this.#slots.get(victim);
        if (slot) this.#drop(victim, slot, 'evicted');
      }
    }
    while (this.#bytes > this.#maxBytes) {
      const victim = this.#policy.victim();
      const slot = victim === undefined ? undefined : this.#slots.get(victim);
      if (victim === undefined || slot === undefined) break;
      this.#remove(victim, slot, 'evicted');
    }
  }

  delete(key: string): boolean {
    const slot = this.#slots.get(key);
    if (!slot) return false;
    this.#remove(key, slot, 'deleted');
    return true;
  }

  clear(): void {
    for (const [key, slot] of [...this.#slots]) this.#remove(key, slot, 'deleted');
    this.#policy.clear();
  }

  keys(): IterableIterator<string> {
    return this.#slots.keys();
  }

  hottest(limit: number): string[] {
    return this.#policy.hottest(limit);
  }

  #remove(key: string, slot: Slot, reason: 'evicted' | 'expired' | 'deleted'): void {
    this.#policy.remove(key);
    this.#drop(key, slot, reason);
  }

  /** Drops a slot the policy has already forgotten. */
  #drop(key: string, slot: Slot, reason: 'evicted' | 'expired' | 'deleted'): void {
    this.#slots.delete(key);
    this.#bytes -= slot.bytes;
    this.#onRemove(key, slot.entry, reason);
  }
}
