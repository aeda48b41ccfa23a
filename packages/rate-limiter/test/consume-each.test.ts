import { ManualClock } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimitStore } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory-store.js';
import type { ConsumeOutcome, ConsumeRequest } from '../src/stores/store.js';

/**
 * A remote store made of parts that fail independently (as a Cluster's masters do): keys that
 * start with `down-` fail at once, `stalled-` never answer, `late-` answer once `release()` is
 * called, the rest are decided by a memory store.
 */
class PartedStore implements RateLimitStore {
  readonly kind = 'parted';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  batches = 0;
  release!: () => void;
  readonly #released = new Promise<void>((resolve) => {
    this.release = resolve;
  });
  consume(
    key: string,
    limits: ConsumeRequest['limits'],
    costs: readonly number[],
  ): Promise<ConsumeOutcome[]> {
    return this.consumeEach([{ key, limits, costs }])[0]!;
  }
  consumeEach(requests: readonly ConsumeRequest[]): Promise<ConsumeOutcome[]>[] {
    this.batches += 1;
    return requests.map(({ key, limits, costs }) => {
      if (key.includes('down-')) return Promise.reject(new Error('part down'));
      if (key.includes('stalled-')) return new Promise<ConsumeOutcome[]>(() => {});
      if (key.includes('late-'))
        return this.#released.then(() =>
          costs.map((cost) => this.#memory.consumeOne(key, limits, cost, undefined)),
        );
      return Promise.resolve(costs.map((cost) => this.#memory.consumeOne(key, limits, cost, undefined)));
    });
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

const limits = [{ limit: 2, windowMs: 60_000 }];

describe('a store whose parts fail independently (consumeEach)', () => {
  it('answers each key by its own part: the store where it answered, the fail mode where it failed or stalled', async () => {
    const store = new PartedStore();
    const limiter = createRateLimiter({
      store,
      limits,
      failMode: 'closed',
      deadlineMs: 30,
      localBlockCache: false,
    });
    const keys = ['a', 'down-1', 'b', 'stalled-1', 'a', 'a'];
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    expect(store.batches).toBe(1);
    expect(results.map((result) => [result.source, result.allowed])).toEqual([
      ['store', true],
      ['fail-mode', false],
      ['store', true],
      ['fail-mode', false],
      ['store', true],
      // The third request of `a` in its window: refused by the store, not by the fail mode.
      ['store', false],
    ]);
    await limiter.close();
  });

  it('keeps the breaker closed while some part answers, and opens it when none does', async () => {
    const store = new PartedStore();
    const clock = new ManualClock(1_800_000_000_000);
    const limiter = createRateLimiter({
      store,
      limits,
      clock,
      failMode: 'open',
      deadlineMs: 20,
      breaker: { consecutiveFailures: 3 },
      localBlockCache: false,
    });
    for (let round = 0; round < 5; round += 1)
      await Promise.all(['ok', 'down-1', 'stalled-1'].map((key) => limiter.check(`${key}-${round}`)));
    expect(limiter.fallbackActive).toBe(false);
    // Within a second of a part's answer, batches that no part answered are those parts' failures.
    for (let round = 0; round < 3; round += 1)
      await Promise.all(['down-1', 'stalled-1'].map((key) => limiter.check(`${key}-${round}`)));
    expect(limiter.fallbackActive).toBe(false);
    clock.advance(1_000);
    for (let round = 0; round < 3; round += 1)
      await Promise.all(['down-1', 'stalled-1'].map((key) => limiter.check(`${key}-${round}`)));
    expect(limiter.fallbackActive).toBe(true);
    const before = store.batches;
    const result = await limiter.check('ok-again');
    expect(result.source).toBe('fail-mode');
    expect(store.batches).toBe(before);
    await limiter.close();
  });

  it('one key per call (low traffic): a run of failures on one part opens the breaker only once no part answered for a second', async () => {
    const store = new PartedStore();
    const clock = new ManualClock(1_800_000_000_000);
    // The default breaker: the ratio or a run of 10 failed calls.
    const limiter = createRateLimiter({
      store,
      limits,
      clock,
      failMode: 'closed',
      deadlineMs: 20,
      localBlockCache: false,
    });
    expect((await limiter.check('ok-0')).source).toBe('store');
    for (let call = 0; call < 30; call += 1)
      expect((await limiter.check(`down-${call}`)).source).toBe('fail-mode');
    expect(limiter.fallbackActive).toBe(false);
    expect((await limiter.check('ok-1')).source).toBe('store');
    clock.advance(999);
    for (let call = 0; call < 30; call += 1) await limiter.check(`down-${call}`);
    expect(limiter.fallbackActive).toBe(false);
    clock.advance(1);
    for (let call = 0; call < 9; call += 1) await limiter.check(`down-${call}`);
    expect(limiter.fallbackActive).toBe(false);
    await limiter.check('down-9');
    expect(limiter.fallbackActive).toBe(true);
    expect((await limiter.check('ok-2')).source).toBe('fail-mode');
    await limiter.close();
  });

  for (const keys of [
    ['late-1', 'late-2'],
    ['ok', 'late-1'],
  ])
    it(`times a batch once: parts that answer after its deadline (${keys.join(', ')}) add no second observation`, async () => {
      const store = new PartedStore();
      const registry = new Registry();
      const limiter = createRateLimiter({ store, limits, deadlineMs: 20, registry, localBlockCache: false });
      await Promise.all(keys.map((key) => limiter.check(key)));
      store.release();
      // The late replies settle (and are refunded where the fail mode refused) in later ticks.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const counts = (await registry.getSingleMetricAsString('noa_rate_limiter_check_duration_seconds'))
        .split('\n')
        .filter((line) => line.startsWith('noa_rate_limiter_check_duration_seconds_count'));
      expect(counts).toEqual([
        'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="parted",result="timeout"} 1',
      ]);
      await limiter.close();
    });
});
