import { once } from 'node:events';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { redisStoreOptionsSchema } from '../../src/stores/redis-store.js';

// README "Options" (RedisStore) and "Redis": the store's defaults and key layout, on the shared
// Redis (each run under a limiter prefix of its own, so files and runs never meet).

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

describe.skipIf(!redisUp)('RedisStore defaults, as the README states them', () => {
  it('prefix noa:rl:, a key in the hash <prefix>{<limiter prefix>:default:<fingerprint>:<key>}, functions on, 32 keys per call', async () => {
    const client = new Redis(serviceUrl('redis'), recommendedRedisOptions);
    await once(client, 'ready');
    const store = new RedisStore({ client });
    const prefix = uniqueName('rl-defaults');
    const limiter = createRateLimiter({ store, prefix, limits: [{ limit: 5, windowMs: 60_000 }] });
    try {
      expect((await limiter.check('user:42')).source).toBe('store');
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await client.scan(cursor, 'MATCH', `noa:rl:{${prefix}:*`, 'COUNT', 1_000);
        cursor = next;
        keys.push(...found);
      } while (cursor !== '0');
      const stateKeys = keys.filter((key) => key.endsWith(':user:42}'));
      expect(stateKeys).toHaveLength(1);
      expect(stateKeys[0]).toMatch(new RegExp(`^noa:rl:\\{${prefix}:default:[^:]+:user:42\\}$`));
      expect(await client.type(stateKeys[0]!)).toBe('hash');
      const major = Number((await client.info('server')).match(/redis_version:(\d+)/)?.[1] ?? 0);
      // Functions are the default on a Redis that has them (7 and later).
      expect(store.usesFunctions).toBe(major >= 7);
      expect(store.keysPerCall).toBe(32);
      expect(redisStoreOptionsSchema.parse({ client })).toMatchObject({
        prefix: 'noa:rl:',
        functions: true,
        functionsRetryMs: 300_000,
      });
      expect(await limiter.reset('user:42')).toBe(true);
    } finally {
      await limiter.close();
      client.disconnect();
    }
  });
});
