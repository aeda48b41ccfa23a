import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateRedis, startPrivateRedis, startRedisCluster } from '../../src/index.js';

describe('startPrivateRedis', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    const started = Date.now();
    redis = await startPrivateRedis();
    console.log(`[private] redis-server started in ${Date.now() - started} ms at ${redis.url}`);
  });
  afterAll(() => redis?.stop());

  it('answers, dies on kill() and comes back empty on restart()', async () => {
    const client = new Redis(redis.url, {
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    client.on('error', () => {});
    await client.connect();
    await client.set('k', 'v');
    await redis.kill();
    await expect(client.get('k')).rejects.toThrow();
    client.disconnect();
    await redis.restart();
    const again = new Redis(redis.url);
    try {
      expect(await again.get('k')).toBeNull();
    } finally {
      again.disconnect();
    }
  });

  it('hangs while frozen and answers again after resume()', async () => {
    const client = new Redis(redis.url, { commandTimeout: 300 });
    try {
      await client.ping();
      redis.freeze();
      await expect(client.ping()).rejects.toThrow(/timed out/i);
      redis.resume();
      expect(await client.ping()).toBe('PONG');
    } finally {
      redis.resume();
      client.disconnect();
    }
  });

  it('stalls replies during pause()', async () => {
    const client = new Redis(redis.url);
    try {
      await client.ping();
      await redis.pause(300);
      const started = Date.now();
      await client.get('x');
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    } finally {
      client.disconnect();
    }
  });
});

describe('startRedisCluster', () => {
  it('forms a 3-master cluster that serves every slot', async () => {
    const started = Date.now();
    const cluster = await startRedisCluster(3);
    console.log(`[private] redis cluster of 3 started in ${Date.now() - started} ms`);
    const client = new Redis.Cluster(cluster.nodes);
    try {
      for (const key of ['a', 'b', 'c', 'd']) await client.set(key, key);
      expect(await client.mget('a')).toEqual(['a']);
      expect(await client.get('d')).toBe('d');
    } finally {
      client.disconnect();
      await cluster.stop();
    }
  });
});
