import { ConfigError, ManualClock } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type FactoryContext } from '../src/index.js';

const caches: Cache[] = [];
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/**
 * bentocache's `setForever`/`getOrSetForever` (and Keyv's `ttl: 0`) store one entry without
 * expiry in a cache whose default TTL is finite: here a per-entry `ttlMs: Infinity`.
 */
describe('an entry without expiry in a cache with a default TTL', () => {
  const year = 365 * 24 * 60 * 60_000;
  function make() {
    const clock = new ManualClock(0);
    const cache = new Cache({ clock, ttlMs: 1_000, graceMs: 500 });
    caches.push(cache);
    return { cache, clock };
  }

  it('set, setMany, getOrSet, the factory context, wrap and warm take ttlMs: Infinity', async () => {
    const { cache, clock } = make();
    await cache.set('set', 1, { ttlMs: Number.POSITIVE_INFINITY });
    await cache.setMany([{ key: 'setMany', value: 2, ttlMs: Number.POSITIVE_INFINITY }]);
    await cache.getOrSet('getOrSet', () => 3, { ttlMs: Number.POSITIVE_INFINITY });
    await cache.getOrSet<number>('context', (ctx: FactoryContext<number>) => {
      ctx.setOptions({ ttlMs: Number.POSITIVE_INFINITY });
      return 4;
    });
    await cache.wrap(
      () => 5,
      () => 'wrap',
      { ttlMs: Number.POSITIVE_INFINITY },
    )();
    await cache.warm(['warm'], () => 6, { ttlMs: Number.POSITIVE_INFINITY });
    await cache.set('finite', 7);
    clock.advance(10 * year);
    expect(await cache.getMany(['set', 'setMany', 'getOrSet', 'context', 'wrap', 'warm', 'finite'])).toEqual([
      1,
      2,
      3,
      4,
      5,
      6,
      undefined,
    ]);
    expect(await cache.ttl('set')).toEqual({
      ttlMs: Number.POSITIVE_INFINITY,
      inGrace: false,
      untilGoneMs: Number.POSITIVE_INFINITY,
    });
  });

  it('refuses 0, negative and NaN with a ConfigError that names ttlMs and says how to keep an entry forever', async () => {
    const { cache } = make();
    for (const ttlMs of [0, -1, Number.NaN, Number.NEGATIVE_INFINITY]) {
      const error = await cache.set('k', 1, { ttlMs }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields).toEqual(['ttlMs']);
      expect((error as Error).message).toContain('Infinity');
    }
  });
});
