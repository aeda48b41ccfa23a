import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * The Redis key layout: values under `<prefix>v:`, the cache's own keys under `<prefix>__`.
 * Values written by releases before the split (`<prefix><key>`) must read as misses.
 */
describe.skipIf(!redisUp)('Redis key layout', () => {
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const prefix = testPrefix('cm_layout');
  const caches: Cache[] = [];
  const open = () => {
    const cache = new Cache({ redis, prefix, bus: false });
    caches.push(cache);
    return cache;
  };
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    await dropPrefix(prefix);
    redis?.disconnect();
  });

  it('stores values under <prefix>v: and a value of the old layout is a miss, recomputed without error', async () => {
    const writer = open();
    await writer.set('user:1', { name: 'current' }, { tags: ['users'] });
    expect(await redis!.exists(`${prefix}v:user:1`)).toBe(1);
    expect(await redis!.exists(`${prefix}user:1`)).toBe(0);
    expect(await redis!.smembers(`${prefix}__tag:users`)).toEqual(['user:1']);

    // What an earlier release left: the same encoded entry at the key without `v:`.
    await redis!.copy(`${prefix}v:user:1`, `${prefix}legacy`);
    await redis!.set(`${prefix}garbage`, 'not an entry');
    const reader = open();
    expect(await reader.get('legacy')).toBeUndefined();
    expect(await reader.getMany(['legacy', 'garbage', 'user:1'])).toEqual([
      undefined,
      undefined,
      { name: 'current' },
    ]);
    expect(await reader.getOrSet('legacy', () => 'recomputed')).toBe('recomputed');
    // The old keys are left to their TTL (a clear only scans the new value space).
    await reader.clear();
    expect(await redis!.exists(`${prefix}legacy`)).toBe(1);
    expect(await redis!.exists(`${prefix}v:legacy`, `${prefix}v:user:1`, `${prefix}__tag:users`)).toBe(0);
  });
});
