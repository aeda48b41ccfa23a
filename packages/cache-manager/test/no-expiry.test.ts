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

/**
 * cache-manager v7's `ttl: 0` and cacheable's absent `ttl` keep values forever by default; a
 * config that spells it `ttlMs: Infinity` (as per entry) was refused at the cache level.
 */
describe('a cache whose default ttlMs is Infinity', () => {
  const year = 365 * 24 * 60 * 60_000;

  it('keeps entries without expiry, as without ttlMs, and a finite per-entry ttlMs still expires', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache({ clock, ttlMs: Number.POSITIVE_INFINITY, graceMs: 500 });
    caches.push(cache);
    await cache.set('forever', 1);
    await cache.getOrSet('computed', () => 2);
    await cache.set('finite', 3, { ttlMs: 1_000 });
    clock.advance(10 * year);
    expect(await cache.getMany(['forever', 'computed', 'finite'])).toEqual([1, 2, undefined]);
    expect(await cache.ttl('forever')).toEqual({
      ttlMs: Number.POSITIVE_INFINITY,
      inGrace: false,
      untilGoneMs: Number.POSITIVE_INFINITY,
    });
  });

  it('still bounds L1 with l1.maxTtlMs', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache({ clock, ttlMs: Number.POSITIVE_INFINITY, l1: { maxTtlMs: 1_000 } });
    caches.push(cache);
    let runs = 0;
    await cache.getOrSet('k', () => ++runs);
    clock.advance(1_001);
    // Memory only: past the L1 cap nothing holds the value, so the factory runs again.
    expect(await cache.getOrSet('k', () => ++runs)).toBe(2);
  });

  it('refuses 0, negative and NaN as the default, naming ttlMs and Infinity', () => {
    for (const ttlMs of [0, -1, Number.NaN, 1.5]) {
      let error: unknown;
      try {
        caches.push(new Cache({ ttlMs }));
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields).toEqual(['ttlMs']);
      expect((error as Error).message).toContain('Infinity');
    }
  });
});
