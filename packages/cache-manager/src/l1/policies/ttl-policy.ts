import type { EvictionPolicy } from './eviction-policy.js';
import { highestFirst } from './key-order.js';

/**
 * TTL-only: reads do not matter; when the store is full the key closest to its expiry goes
 * first. A binary min-heap with lazy deletion (stale heap nodes are skipped), so insert and
 * victim are O(log n).
 */
export class TtlPolicy implements EvictionPolicy {
  readonly name = 'ttl';
  readonly #expiry = new Map<string, number>();
  #heap: { key: string; expiresAt: number }[] = [];
  readonly #capacity: number;

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

  victim(): string | undefined {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#expiry.get(top.key) === top.expiresAt) return top.key;
      this.#pop();
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
