import type { EvictionPolicy } from './eviction-policy.js';
import { first } from './key-order.js';

/**
 * Least recently used, on a `Set`'s insertion order (delete + add moves a key to the end).
 * Used for hit-rate simulation and as the base of {@link FifoPolicy}; the `lru` store itself
 * runs on `lru-cache`.
 */
export class LruPolicy implements EvictionPolicy {
  readonly name: string = 'lru';
  readonly #order = new Set<string>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  touch(key: string): void {
    if (this.#order.delete(key)) this.#order.add(key);
  }

  recordMiss(): void {}

  insert(key: string): string[] {
    this.#order.delete(key);
    this.#order.add(key);
    const evicted: string[] = [];
    while (this.#order.size > this.#capacity) {
      const oldest = this.victim();
      if (oldest === undefined) break;
      this.#order.delete(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }

  update(key: string): void {
    this.touch(key);
  }

  remove(key: string): void {
    this.#order.delete(key);
  }

  victim(): string | undefined {
    return first(this.#order);
  }

  clear(): void {
    this.#order.clear();
  }

  hottest(limit: number): string[] {
    return [...this.#order].reverse().slice(0, limit);
  }
}
