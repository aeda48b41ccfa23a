import type { EvictionPolicy } from './eviction-policy.js';
import { highestFirst } from './key-order.js';

/**
 * TTL-only: reads do not matter; when the store is full the key closest to its expiry goes
 * first. A binary min-heap with lazy deletion (stale heap nodes are skipped), so insert and
 * victim are O(log n). A sliding entry's expiry moves on reads without the policy hearing of
 * it: before naming a victim, the policy compares the heap's top with the store's current
 * expiry (see {@link TtlPolicy.watchExpiry}) and re-files it if it has moved on. Expiries only
 * move later, so the first top that has not moved is the true minimum; reads stay free.
 */
export class TtlPolicy implements EvictionPolicy {
  readonly name = 'ttl';
  readonly #expiry = new Map<string, number>();
  #heap: { key: string; expiresAt: number }[] = [];
  readonly #capacity: number;
  #currentExpiry: ((key: string) => number | undefined) | undefined;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  touch(): void {}

  recordMiss(): void {}

  insert(key: string, expiresAt: number): string[] {
    this.update(key, expiresAt);
    const evicted: string[] = [];
    while (this.#expiry.size > this.#capacity) {
      const victim = this.victim();
      if (victim === undefined) break;
      this.remove(victim);
      evicted.push(victim);
    }
    return evicted;
  }

  update(key: string, expiresAt: number): void {
    this.#expiry.set(key, expiresAt);
    this.#push({ key, expiresAt });
    // Lazy deletion lets dead nodes pile up under overwrites: rebuild when they dominate.
    if (this.#heap.length > 4 * this.#expiry.size + 64) this.#rebuild();
  }

  remove(key: string): void {
    this.#expiry.delete(key);
  }

  watchExpiry(currentExpiry: (key: string) => number | undefined): void {
    this.#currentExpiry = currentExpiry;
  }

  victim(): string | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#expiry.get(top.key) !== top.expiresAt) {
        this.#pop(); // a dead node
        continue;
      }
      const current = this.#currentExpiry?.(top.key);
      if (current === undefined || current <= top.expiresAt) return top.key;
      this.#pop();
      this.#expiry.set(top.key, current);
      this.#push({ key: top.key, expiresAt: current });
    }
    return undefined;
  }

  hottest(limit: number): string[] {
    return highestFirst(this.#expiry, limit);
  }

  clear(): void {
    this.#expiry.clear();
    this.#heap = [];
  }

  #rebuild(): void {
    this.#heap = [];
    for (const [key, expiresAt] of this.#expiry) this.#push({ key, expiresAt });
  }

  #push(node: { key: string; expiresAt: number }): void {
    const heap = this.#heap;
    heap.push(node);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.expiresAt <= node.expiresAt) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = node;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let index = 0;
    const length = heap.length;
    while (true) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && heap[right]!.expiresAt < heap[left]!.expiresAt ? right : left;
      if (heap[child]!.expiresAt >= last.expiresAt) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = last;
  }
}
