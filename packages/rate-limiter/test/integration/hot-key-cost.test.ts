import { once } from 'node:events';
import { awayFromWindowEdge } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// The local block cache remembers a refusal of one cost: a smaller cost (or 0) that still fits in
// what the key has left is the store's to admit, not refused from the cache.
const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', recommendedRedisOptions);
const prefix = `hot-key-cost:${process.pid}:${Date.now()}:`;
beforeAll(async () => {
  await once(client, 'ready');
});
afterAll(() => client.disconnect());

describe('the hot-key cache and costs (shared Redis)', () => {
  it('a refusal of a large cost does not refuse a smaller cost that fits', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [{ algorithm: 'token-bucket', limit: 10, windowMs: 600_000 }],
      deadlineMs: 2_000,
    });
    expect((await limiter.check({ key: 'k', cost: 8 })).allowed).toBe(true);
    const refused = await limiter.check({ key: 'k', cost: 5 });
    expect([refused.allowed, refused.source, refused.remaining]).toEqual([false, 'store', 2]);
    const small = await limiter.check({ key: 'k', cost: 2 });
    expect([small.allowed, small.source, small.remaining]).toEqual([true, 'store', 0]);
    await limiter.close();
  });

  it('a check of cost 0 after a refusal is admitted, as the store admits it', async () => {
    // The fixed window is aligned to the clock: the checks below must all fall in one.
    await awayFromWindowEdge(600_000, 3_000);
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [{ name: 'api', algorithm: 'fixed-window', limit: 3, windowMs: 600_000 }],
      deadlineMs: 2_000,
    });
    expect((await limiter.check({ key: 'zero', cost: 3 })).allowed).toBe(true);
    expect((await limiter.check('zero')).allowed).toBe(false);
    const free = await limiter.check({ key: 'zero', cost: 0 });
    expect([free.allowed, free.source]).toEqual([true, 'store']);
    // The same cost as the refusal is still answered locally, also after a cost no limit can
    // admit (the store is asked for the key's state at cost 0, which lifts nothing).
    expect((await limiter.check('zero')).source).toBe('local-cache');
    expect((await limiter.check({ key: 'zero', cost: 4 })).outcome).toBe('exceeds-capacity');
    expect((await limiter.check('zero')).source).toBe('local-cache');
    await limiter.close();
  });
});
