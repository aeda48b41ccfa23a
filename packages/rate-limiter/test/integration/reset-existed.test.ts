import { generousDeadlineMs, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// limiter.reset() resolves whether the key had state (rate-limiter-flexible's delete()), on Redis
// from what DEL counted: one round trip, as before.

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

describe.skipIf(!redisUp)('limiter.reset() on Redis resolves whether the key existed', () => {
  const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
  afterAll(async () => {
    await client.quit();
  });

  it('true for a counted, a sliding-log or a blocked key, false for an unknown or already reset one', async () => {
    await client.connect();
    const store = new RedisStore({ client, prefix: `${uniqueName('rlreset')}:` });
    const limiter = createRateLimiter({
      limits: [
        { name: 'm', limit: 5, windowMs: 60_000 },
        { name: 'log', algorithm: 'sliding-log', limit: 5, windowMs: 60_000 },
      ],
      store,
      deadlineMs: generousDeadlineMs,
    });
    try {
      expect(await limiter.reset('nobody')).toBe(false);
      await limiter.check('a');
      expect(await limiter.reset('a')).toBe(true);
      expect(await limiter.reset('a')).toBe(false);
      expect((await limiter.check('a')).remaining).toBe(4);
      await limiter.block('b', 10_000);
      expect(await limiter.reset('b')).toBe(true);
      expect((await limiter.check('b')).allowed).toBe(true);
    } finally {
      await limiter.close();
    }
  });
});
