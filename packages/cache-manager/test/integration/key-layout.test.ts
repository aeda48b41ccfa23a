import { ConfigError } from '@noa/core';
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
    // A deadline a loaded machine cannot miss: a read past the default 500 ms is a miss.
    const cache = new Cache({ redis, prefix, bus: false, operationTimeoutMs: 5_000 });
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

  /** A cache on `cachePrefix`, or undefined when the prefix is refused with ConfigError naming it. */
  const openOn = (cachePrefix: string) => {
    try {
      const cache = new Cache({ redis, prefix: cachePrefix, bus: false });
      caches.push(cache);
      return cache;
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields).toEqual(['prefix']);
      return undefined;
    }
  };

  it('never lets two caches of different prefixes share a key (a prefix that could is refused)', async () => {
    const bare = prefix.slice(0, -1);
    // [outer prefix, inner prefix, outer key, inner key]: each inner value was an outer value.
    const overlapping = [
      [prefix, `${prefix}v:x:`, 'x:v:k', 'k'],
      [bare, `${bare}v:`, 'v:k', 'k'],
    ] as const;
    for (const [outerPrefix, innerPrefix, outerKey, innerKey] of overlapping) {
      const [outer, inner] = [openOn(outerPrefix), openOn(innerPrefix)];
      if (outer === undefined || inner === undefined) continue;
      await outer.set(outerKey, 'outer value');
      expect(await inner.get(innerKey), innerPrefix).toBeUndefined();
    }
    // A prefix ending in `__tag:`: its values were the outer cache's tag sets.
    const outer = openOn(prefix)!;
    const inner = openOn(`${prefix}__tag:`);
    await outer.set('tagged', 1, { tags: ['v:k'] });
    await inner?.set('k', 'inner value');
    expect(await outer.deleteByTag('v:k')).toBe(1);
    await dropPrefix(bare);
  });
});
