import { type ConsumeOutcome, MemoryStore, type RateLimitStore } from '../src/index.js';

/**
 * A remote store over memory, for tests of the limiter's store-failure paths: rejects while
 * `down`, never answers a consume while `hung`.
 */
export class FlakyStore implements RateLimitStore {
  readonly kind = 'flaky';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  down = false;
  hung = false;
  consume(...args: Parameters<MemoryStore['consume']>): Promise<ConsumeOutcome[]> {
    if (this.hung) return new Promise(() => {});
    if (this.down) return Promise.reject(new Error('connection refused'));
    return Promise.resolve(this.#memory.consume(...args));
  }
  adjust(...args: Parameters<MemoryStore['adjust']>) {
    if (this.down) return Promise.reject(new Error('connection refused'));
    return Promise.resolve(this.#memory.adjust(...args));
  }
  async reset(key: string): Promise<boolean> {
    return this.#memory.reset(key);
  }
  async close(): Promise<void> {
    await this.#memory.close();
  }
}
