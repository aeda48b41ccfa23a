import type { ManualClock } from '@noa/core';
import { type ConsumeOutcome, MemoryStore, type RateLimitStore } from '../src/index.js';

/** A remote store over memory (the limiter then runs its remote path: deadline, batch, block cache). */
export class RemoteMemoryStore implements RateLimitStore {
  readonly kind = 'remote-memory';
  readonly remote = true;
  readonly #memory: MemoryStore;
  constructor(clock: ManualClock) {
    this.#memory = new MemoryStore({ clock });
  }
  async consume(...args: Parameters<MemoryStore['consume']>): Promise<ConsumeOutcome[]> {
    return this.#memory.consume(...args);
  }
  async adjust(...args: Parameters<MemoryStore['adjust']>): Promise<ConsumeOutcome> {
    return this.#memory.adjust(...args);
  }
  async reset(key: string): Promise<boolean> {
    return this.#memory.reset(key);
  }
  async close(): Promise<void> {
    await this.#memory.close();
  }
}
