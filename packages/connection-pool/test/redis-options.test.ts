import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../src/index.js';
import { createRedisPool } from '../src/redis.js';

// README "Redis and MongoDB": lazyConnect, enableOfflineQueue, maxRetriesPerRequest and
// retryStrategy given in `redis` are the pool's, whatever the caller passed.
describe('RedisPool sets the ioredis options its failure handling needs', () => {
  it('a caller’s retryStrategy and offline queue do not make a use() on a refused server wait', async () => {
    const pool = createRedisPool({
      redis: {
        host: '127.0.0.1',
        port: 1, // nothing listens
        retryStrategy: () => 10,
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        lazyConnect: false,
      },
    });
    try {
      await expect(pool.use((client) => client.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(pool.health()).toMatchObject({ healthy: false, reason: 'down' });
    } finally {
      await pool.close();
    }
  });
});
