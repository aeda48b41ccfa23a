import { startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Cache, type HealthStatus } from '../../src/index.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('the cache health test');

/** Reads (the traffic that tells the cache how Redis is) until health() says `status`. */
async function readUntil(cache: Cache, status: HealthStatus): Promise<void> {
  const giveUp = Date.now() + 20_000;
  while (cache.health().status !== status) {
    if (Date.now() > giveUp) throw new Error(`health stayed ${cache.health().status}, wanted ${status}`);
    await cache.get('missing').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(!hasRedisServer)('Cache.health() over a Redis (private) that dies and comes back', () => {
  it('goes degraded while L1 serves (down when set to throw), with the Redis error, and up again', async () => {
    const server = await startPrivateRedis();
    const clients: Redis[] = [];
    const cacheWith = (onBackendError: 'degrade' | 'throw') => {
      const redis = new Redis(server.url, { retryStrategy: () => 100, maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      clients.push(redis);
      return new Cache({
        redis,
        prefix: `health-${onBackendError}:`,
        bus: false,
        onBackendError,
        operationTimeoutMs: 300,
        breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 },
      });
    };
    const degrading = cacheWith('degrade');
    const throwing = cacheWith('throw');
    try {
      for (const cache of [degrading, throwing]) {
        await cache.ready();
        await cache.set('kept', 'in L1');
        expect(cache.health()).toMatchObject({ status: 'up', details: { l2: 'closed', l2Answering: true } });
      }

      await server.kill();
      await readUntil(degrading, 'degraded');
      await readUntil(throwing, 'down');
      expect(degrading.health().cause).toBeInstanceOf(Error);
      expect(throwing.health().cause).toBeInstanceOf(Error);
      // What degraded means: L1 still answers.
      expect(await degrading.get('kept')).toBe('in L1');

      await server.restart();
      for (const cache of [degrading, throwing]) {
        await readUntil(cache, 'up');
        expect(cache.health()).toMatchObject({ details: { l2: 'closed', l2Answering: true } });
        expect(cache.health()).not.toHaveProperty('cause');
      }
    } finally {
      await degrading.close();
      await throwing.close();
      for (const client of clients) client.disconnect();
      await server.stop();
    }
  });
});
