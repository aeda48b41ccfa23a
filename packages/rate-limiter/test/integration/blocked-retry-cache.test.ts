import { generousDeadlineMs, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, rateLimitHeaders } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// On Redis, a check right after `block()` is answered by the local block cache (README, "Hot
// keys"): over a spent window it must still say when the window admits the request, the later of
// the block's end and the window's (README, "Without HTTP"), as the memory store does. It said the
// block's end, from block()'s own answer (of cost 0), and a client that obeyed Retry-After was
// refused again. Found by the model-based test (limiter-model.test.ts).

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

const hourMs = 3_600_000;
// Epoch-aligned windows of 2·10^12 ms: the current one is [0, 2·10^12), whose end is years away.
const windowMs = 2_000_000_000_000;

describe.skipIf(!redisUp)('a check right after block() on Redis', () => {
  const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
  afterAll(async () => {
    await client.quit();
  });

  it('over a spent window says the window’s end; a cost the window admits, the block’s', async () => {
    await client.connect();
    const limiter = createRateLimiter({
      limits: [{ limit: 10, windowMs }],
      store: new RedisStore({ client, prefix: `${uniqueName('rlblockcache')}:` }),
      deadlineMs: generousDeadlineMs,
      failMode: 'closed',
    });
    try {
      await limiter.check({ key: 'k', cost: 7 });
      await limiter.block('k', hourMs);
      const spent = await limiter.check({ key: 'k', cost: 4 });
      expect(spent.outcome).toBe('blocked');
      expect(spent.retryAfterMs).toBeGreaterThan(1_000 * hourMs);
      expect(Number(rateLimitHeaders(spent)['Retry-After'])).toBeGreaterThan(1_000 * 3_600);
      const fits = await limiter.check({ key: 'k', cost: 3 });
      expect(fits.outcome).toBe('blocked');
      expect(fits.retryAfterMs).toBeLessThanOrEqual(hourMs);
      expect(fits.retryAfterMs).toBeGreaterThan(hourMs - 60_000);
      await limiter.reset('k');
    } finally {
      await limiter.close();
    }
  });
});
