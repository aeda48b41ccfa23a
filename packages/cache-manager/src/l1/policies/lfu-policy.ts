import type { EvictionPolicy } from './eviction-policy.js';
import { first, highestFirst } from './key-order.js';

/**
 * Least frequently used in O(1): keys sit in per-count buckets and the lowest non-empty bucket
 * gives the victim (oldest first within a bucket, so ties fall back to LRU).
 */
export class LfuPolicy implements EvictionPolicy {
  readonly name = 'lfu';
  readonly #counts = new Map<string, number>();
  readonly #buckets = new Map<number, Set<string>>();
  readonly #capacity: number;
  #minCount = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  touch(key: string): void {
    const count = this.#counts.get(key);
    if (count === undefined) return;
    this.#bucket(count).delete(key);
    if (this.#bucket(count).size === 0) {
      this.#buckets.delete(count);
      if (this.#minCount === count) this.#minCount = count + 1;
    }
    this.#counts.set(key, count + 1);
    this.#bucket(count + 1).add(key);
  }

  recordMiss(): void {}

  insert(key: string): string[] {
    const evicted: string[] = [];
    if (this.#counts.has(key)) {
      this.touch(key);
      return evicted;
    }
    while (this.#counts.size >= this.#capacity) {
      const victim = this.victim();
      if (victim === undefined) break;
      this.remove(victim);
      evicted.push(victim);
    }
    this.#counts.set(key, 1);
    this.#bucket(1).add(key);
    this.#minCount = 1;
    return evicted;
  }

  update(key: string): void {
    this.touch(key);
  }

  remove(key: string): void {
    const count = this.#counts.get(key);
    if (count === undefined) return;
    this.#counts.delete(key);
    const bucket = this.#bucket(count);
    bucket.delete(key);
    if (bucket.size === 0) this.#buckets.delete(count);
  }

  victim(): string | undefined {
    if (this.#counts.size === 0) return undefined;
    let bucket = this.#buckets.get(this.#minCount);
    if (!bucket || bucket.size === 0) {
      // The minimum moved (a removal emptied its bucket): find the new one. O(distinct counts),
      // and only after removals; a loop rather than Math.min(...) to avoid argument limits.
      let min = Number.POSITIVE_INFINITY;
      for (const count of this.#buckets.keys()) if (count < min) min = count;
      this.#minCount = min;
      bucket = this.#buckets.get(this.#minCount);
    }
    return bucket === undefined ? undefined : first(bucket);
  }

  hottest(limit: number): string[] {
    return highestFirst(this.#counts, limit);
  }

  clear(): void {
    this.#counts.clear();
    this.#buckets.clear();
    this.#minCount = 0;
  }

  #bucket(count: number): Set<string> {
    let bucket = this.#buckets.get(count);
    if (!bucket) {
      bucket = new Set();
      this.#buckets.set(count, bucket);
    }
    return bucket;
  }
}
