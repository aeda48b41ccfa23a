import { describe, expect, it } from 'vitest';
import { type ConsumeOutcome, createRateLimiter, MemoryStore, type RateLimitStore } from '../src/index.js';

// README "Memory store": "There is no timer per key, nor any timer." And CONVENTIONS: nothing a
// limiter starts outlives its close().

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === 'Timeout').length;

/** A remote store over memory that answers at once. */
class RemoteMemory implements RateLimitStore {
  readonly kind = 'remote-memory';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  consume(...args: Parameters<MemoryStore['consume']>): Promise<ConsumeOutcome[]> {
    return Promise.resolve(this.#memory.consume(...args));
  }
  async reset(key: string): Promise<boolean> {
    return this.#memory.reset(key);
  }
  async close(): Promise<void> {
    await this.#memory.close();
  }
}

describe('timers', () => {
  it('the memory store and a limiter on it start none, whatever they hold (every algorithm, auto-block, blocks)', async () => {
    const before = timers();
    const limiter = createRateLimiter({
      limits: [
        { name: 'fixed', limit: 5, windowMs: 60_000 },
        { name: 'log', algorithm: 'sliding-log', limit: 50, windowMs: 60_000 },
        { name: 'bucket', algorithm: 'leaky-bucket', limit: 50, windowMs: 60_000, queueMaxDelayMs: 1_000 },
      ],
      autoBlock: { violations: 2, withinMs: 1_000, blockMs: 60_000 },
    });
    for (let index = 0; index < 2_000; index += 1) await limiter.check(`k${index % 100}`);
    await limiter.block('blocked', 600_000);
    expect(timers()).toBe(before);
    await limiter.close();
    expect(timers()).toBe(before);
  });

  it('a limiter on a remote store leaves none running after close()', async () => {
    const before = timers();
    const limiter = createRateLimiter({
      store: new RemoteMemory(),
      limits: [{ limit: 5, windowMs: 60_000 }],
    });
    await Promise.all(Array.from({ length: 50 }, (_, index) => limiter.check(`k${index % 7}`)));
    await limiter.close();
    expect(timers()).toBe(before);
  });
});
