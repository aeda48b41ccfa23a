import { describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimitStore } from '../src/index.js';
import { MemoryStore } from '../src/stores/memory-store.js';
import type { ConsumeOutcome, ConsumeRequest } from '../src/stores/store.js';

/**
 * A remote store that records the keys of each batch it is sent: through `consumeMany` (one
 * server), or `consumeEach` (parts that answer separately, as a Cluster's masters) when `parted`.
 */
function recordingStore(parted: boolean): RateLimitStore & { batches: number[] } {
  const memory = new MemoryStore();
  const decide = (requests: readonly ConsumeRequest[]) =>
    requests.map(({ key, limits, costs }) =>
      costs.map((cost) => memory.consumeOne(key, limits, cost, undefined)),
    );
  const batches: number[] = [];
  const store: RateLimitStore & { batches: number[] } = {
    kind: 'recording',
    remote: true,
    batches,
    consume: (key, limits, costs) => Promise.resolve(decide([{ key, limits, costs }])[0]!),
    reset: async () => {},
    close: async () => {},
  };
  if (parted)
    store.consumeEach = (requests) => {
      batches.push(requests.length);
      return decide(requests).map((outcomes): Promise<ConsumeOutcome[]> => Promise.resolve(outcomes));
    };
  else
    store.consumeMany = (requests) => {
      batches.push(requests.length);
      return Promise.resolve(decide(requests));
    };
  return store;
}

describe("a tick's checks on a remote store", () => {
  const keys = Array.from({ length: 100 }, (_, index) => `user-${index}`);

  it('on one server, go in batches of 32 keys as they come (the server works meanwhile)', async () => {
    const store = recordingStore(false);
    const limiter = createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000 }] });
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    expect(results.every((result) => result.allowed && result.source === 'store')).toBe(true);
    expect(store.batches).toEqual([32, 32, 32, 4]);
    await limiter.close();
  });

  it('on a store of parts (a Cluster), go as one batch: one write per master, not one per 32 keys', async () => {
    const store = recordingStore(true);
    const limiter = createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000 }] });
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    expect(results.every((result) => result.allowed && result.source === 'store')).toBe(true);
    expect(store.batches).toEqual([100]);
    await limiter.close();
  });

  it('on a store of parts, a flood of keys in one tick is still sent in bounded batches', async () => {
    const store = recordingStore(true);
    const limiter = createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000 }] });
    const flood = Array.from({ length: 600 }, (_, index) => `flood-${index}`);
    await Promise.all(flood.map((key) => limiter.check(key)));
    expect(store.batches).toEqual([256, 256, 88]);
    await limiter.close();
  });
});
