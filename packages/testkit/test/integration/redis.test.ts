import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { clearRedisPrefix, createNamespace } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('Redis smoke', () => {
  it('SETs and GETs under a key prefix on Redis 7, and clears only that prefix', async () => {
    const url = await requireService('redis', 'Redis');
    const { keyPrefix } = createNamespace('redis_smoke');
    const redis = new Redis(url);
    try {
      const info = await redis.info('server');
      const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '';
      expect(version).toMatch(/^7\./);
      await redis.set(`${keyPrefix}greeting`, 'hello');
      expect(await redis.get(`${keyPrefix}greeting`)).toBe('hello');
      for (let index = 0; index < 20; index += 1) await redis.set(`${keyPrefix}n:${index}`, index);
      // A neighbour's key that shares the prefix's text but not the prefix itself survives.
      const neighbour = `${keyPrefix.slice(0, -1)}x`;
      await redis.set(neighbour, 'keep');
      expect(await clearRedisPrefix(keyPrefix, url)).toBe(21);
      expect(await redis.exists(`${keyPrefix}greeting`)).toBe(0);
      expect(await redis.get(neighbour)).toBe('keep');
      await redis.unlink(neighbour);
      smokeLine('redis', version, url);
    } finally {
      redis.disconnect();
    }
  });
});
