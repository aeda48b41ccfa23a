import { describe, expect, it } from 'vitest';
import { type AlgorithmName, createRateLimiter, type RateLimitStore } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory-store.js';
import type { ConsumeOptions, ConsumeOutcome, StoreAdjustment } from '../src/stores/store.js';

/**
 * A remote store decided by a memory store whose check replies are held until `release()` (they
 * come after the caller's deadline, counted), and which records the options of each adjustment.
 */
class LateStore implements RateLimitStore {
  readonly kind = 'late';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  readonly adjustments: { adjustment: StoreAdjustment; options: ConsumeOptions | undefined }[] = [];
  release!: () => void;
  readonly #released = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  async consume(
    key: string,
    limits: Parameters<MemoryStore['consume']>[1],
    costs: readonly number[],
  ): Promise<ConsumeOutcome[]> {
    const outcomes = costs.map((cost) => this.#memory.consumeOne(key, limits, cost, undefined));
    await this.#released;
    return outcomes;
  }
  adjust(
    key: string,
    limits: Parameters<MemoryStore['consume']>[1],
    adjustment: StoreAdjustment,
    block: undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome> {
    this.adjustments.push({ adjustment, options });
    return Promise.resolve(this.#memory.adjust(key, limits, adjustment, block, options));
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('the refund of a check answered after the fail mode refused it', () => {
  const algorithms: AlgorithmName[] = ['token-bucket', 'leaky-bucket', 'fixed-window'];
  it.each(algorithms)(
    '%s: carries a deadline (a bucket has no window to bound it, and must not wait forever)',
    async (algorithm) => {
      const store = new LateStore();
      const limiter = createRateLimiter({
        store,
        limits: [{ algorithm, limit: 5, windowMs: 86_400_000 }],
        failMode: 'closed',
        deadlineMs: 20,
        breaker: { consecutiveFailures: 1_000_000 },
        localBlockCache: false,
      });
      expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'fail-mode' });
      store.release();
      await expect.poll(() => store.adjustments.length).toBe(1);
      const [{ adjustment, options }] = store.adjustments as [(typeof store.adjustments)[0]];
      expect(adjustment).toEqual({ operation: 'refund', points: 1 });
      // Bounded, and not shorter than a check's own deadline.
      expect(options?.deadlineMs).toBeGreaterThanOrEqual(20);
      expect(options?.deadlineMs).toBeLessThanOrEqual(1_000);
      await limiter.close();
    },
  );
});
