import { delay } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { redisUp, sharedRedisCaches } from './helpers.js';

/**
 * An early refresh (refresh-ahead) whose factory is still running when the value it refreshes
 * expires in Redis: its write is a compare-and-set against the value it read, which is gone, so
 * the write fails and the next call runs the factory (README Consistency, "What it does not
 * cover"). Absence is not taken for "unchanged": Redis cannot tell an expiry from another
 * instance's delete, which must still win. A grace that outlasts the run (the physical TTL is
 * `ttlMs + graceMs`) keeps the value there, and the refresh is cached.
 */
describe.skipIf(!redisUp)('an early refresh that outlives the value it refreshes (Redis)', () => {
  const { open } = sharedRedisCaches('refresh-past-expiry');
  const options = { bus: false as const };

  /** Sets `key`, then starts its early refresh with a factory that runs 1.5 s; resolves after it. */
  async function refreshPastTtl(key: string, graceMs: number) {
    const a = await open(options);
    const c = await open(options);
    await a.set(key, 'first', { ttlMs: 1_000, graceMs });
    await delay(150);
    let runs = 0;
    let refreshed!: () => void;
    const done = new Promise<void>((resolve) => {
      refreshed = resolve;
    });
    const factory = async () => {
      runs += 1;
      try {
        await delay(1_500);
        return 'refreshed';
      } finally {
        setTimeout(refreshed, 50);
      }
    };
    const call = { ttlMs: 1_000, graceMs, refreshThresholdMs: 900 };
    expect(await a.getOrSet(key, factory, call)).toBe('first');
    await done;
    return { a, c, runs: () => runs, factory, call };
  }

  it('with no grace the value expires during the run: the refresh is not cached, the next call runs the factory', async () => {
    const { c, runs, factory, call } = await refreshPastTtl('no-grace', 0);
    expect(runs()).toBe(1);
    expect(await c.get('no-grace')).toBeUndefined();
    expect(await c.getOrSet('no-grace', factory, call)).toBe('refreshed');
    expect(runs()).toBe(2);
  });

  it('with a grace longer than the run the refresh is cached for every instance', async () => {
    const { c, runs } = await refreshPastTtl('graced', 10_000);
    expect(runs()).toBe(1);
    expect(await c.get('graced')).toBe('refreshed');
  });
});
