import { ManualClock } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** Waits until `check` holds (polling every 5 ms, at most `ms`). */
async function until(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe.skipIf(!redisUp)('background refreshes across instances (real Redis)', () => {
  const prefix = testPrefix('cm_refresh_ahead');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const instances = async (count: number, options: CacheOptions) => {
    const made = Array.from({ length: count }, () => new Cache({ redis, prefix, ...options }));
    caches.push(...made);
    await Promise.all(made.map((cache) => cache.ready()));
    return made;
  };
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('softTimeoutMs: 0 serves the value in grace at once on every instance, and the key is refreshed once', async () => {
    const clock = new ManualClock(Date.now());
    const group = await instances(3, { clock, ttlMs: 1_000, graceMs: 60_000, softTimeoutMs: 0 });
    await group[0]!.getOrSet('soft0', () => 'old');
    await Promise.all(group.map((cache) => cache.get('soft0')));
    clock.advance(2_000);
    const slow = deferred<string>();
    let runs = 0;
    const factory = () => {
      runs += 1;
      return slow.promise;
    };
    // Each instance's call returns while the one refresh is still running (the lease holder's
    // or its own): none waited for it.
    for (const cache of group) await expect(cache.getOrSet('soft0', factory)).resolves.toBe('old');
    expect(runs).toBe(1);
    slow.resolve('new');
    for (const cache of group) await until(async () => (await cache.get('soft0')) === 'new');
    expect(runs).toBe(1);
  });
});
