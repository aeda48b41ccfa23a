import type { EvictionPolicy } from './eviction-policy.js';

/** First in, first out: reads do not matter; the oldest insertion goes first. */
export class FifoPolicy implements EvictionPolicy {
  readonly name = 'fifo';
  readonly #order = new Set<string>();
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  touch(): void {}

  recordMiss(): void {}

  insert(key: string): string[] {
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

  update(): void {}

  remove(key: string): void {
    this.#order.delete(key);
  }

  victim(): string | undefined {
    for (const key of this.#order) return key;
    return undefined;
  }

  clear(): void {
    this.#order.clear();
  }

  hottest(limit: number): string[] {
    return [...this.#order].reverse().slice(0, limit);
  }
}
