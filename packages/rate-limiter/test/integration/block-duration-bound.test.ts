import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, InvalidAdjustmentError, MemoryStore } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// `limiter.block(key, durationMs)` took any integer, as "a very long block" (rate-limiter-flexible
// users ban "for ever" with a huge duration). The memory store kept it; Redis's script failed
// ("ERR value is not an integer or out of range") past about 2^62 ms from now, a store failure
// that fed the breaker: ten such calls in a row opened it, and every other key's checks went to
// the fail mode. A duration is now bounded as autoBlock's blockMs is (2^53 − 1), on every store.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;

describe.skipIf(skip !== undefined)('a block duration past 2^53 − 1 ms', () => {
  const client = new Redis(serviceUrl('redis'), recommendedRedisOptions);
  afterAll(() => client.disconnect());

  it('is refused on Redis before any call, so the breaker stays closed for every other key', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: `${uniqueName('block-bound')}:` }),
      limits: [{ limit: 10, windowMs: 60_000 }],
      deadlineMs: 2_000,
    });
    try {
      for (let index = 0; index < 12; index += 1)
        await expect(limiter.block(`bad-${index}`, 2 ** 62)).rejects.toMatchObject({
          code: 'NOA_RATE_LIMIT_INVALID_ADJUSTMENT',
          field: 'durationMs',
        });
      const innocent = await limiter.check('innocent');
      expect([innocent.source, innocent.allowed]).toEqual(['store', true]);
      expect(limiter.health().details).toMatchObject({ breaker: 'closed' });
      // The largest duration is kept, on Redis as in memory (its end, now + 2^53 − 1, is a double:
      // within a few ms of it).
      const longest = await limiter.block('longest', Number.MAX_SAFE_INTEGER);
      expect(longest.outcome).toBe('blocked');
      expect(longest.retryAfterMs).toBeGreaterThan(Number.MAX_SAFE_INTEGER - 10);
      expect((await limiter.check('longest')).outcome).toBe('blocked');
    } finally {
      await limiter.close();
    }
  });

  it('is refused by the memory store alike (it kept it)', async () => {
    const limiter = createRateLimiter({
      store: new MemoryStore(),
      limits: [{ limit: 10, windowMs: 60_000 }],
    });
    await expect(limiter.block('k', Number.MAX_SAFE_INTEGER + 1)).rejects.toBeInstanceOf(
      InvalidAdjustmentError,
    );
    await expect(limiter.block('k', Number.MAX_VALUE)).rejects.toBeInstanceOf(InvalidAdjustmentError);
    expect((await limiter.block('k', Number.MAX_SAFE_INTEGER)).outcome).toBe('blocked');
    await limiter.close();
  });
});
