import { ConfigError, ManualClock } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});
const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * cache-manager v7's `wrap(key, fn, ttl, refreshThreshold)`: once a hit finds less than the
 * threshold of freshness left, the key is refreshed in the background, whatever the factory's
 * duration (XFetch, by contrast, hardly ever refreshes a fast factory early).
 */
describe('refreshThresholdMs', () => {
  /** A fast factory counting its runs, returning 'v<run>'. */
  function counter() {
    const state = { runs: 0, fail: false };
    const factory = () => {
      state.runs += 1;
      if (state.fail) throw new Error('source down');
      return `v${state.runs}`;
    };
    return { state, factory };
  }

  it('refreshes in the background once the TTL left falls below the threshold (a fast factory)', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 10_000, refreshThresholdMs: 2_000 });
    const { state, factory } = counter();
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    clock.advance(7_000); // 3 s left: above the threshold
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    await tick();
    expect(state.runs).toBe(1);
    clock.advance(1_500); // 1.5 s left
    // The caller gets the current value at once; the refresh runs behind it, once.
    expect(await Promise.all([cache.getOrSet('k', factory), cache.getOrSet('k', factory)])).toEqual([
      'v1',
      'v1',
    ]);
    await tick();
    expect(state.runs).toBe(2);
    expect(await cache.getOrSet('k', factory)).toBe('v2');
    expect((await cache.ttl('k'))?.ttlMs).toBe(10_000);
  });

  it('is a per-call option too, and 0 per call turns the default off', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 10_000, refreshThresholdMs: 2_000 });
    const plain = make({ clock, ttlMs: 10_000 });
    const off = counter();
    const on = counter();
    await cache.getOrSet('off', off.factory, { refreshThresholdMs: 0 });
    await plain.getOrSet('on', on.factory, { refreshThresholdMs: 5_000 });
    clock.advance(9_000);
    await cache.getOrSet('off', off.factory, { refreshThresholdMs: 0 });
    await plain.getOrSet('on', on.factory, { refreshThresholdMs: 5_000 });
    await tick();
    expect(off.state.runs).toBe(1);
    expect(on.state.runs).toBe(2);
  });

  it('keeps the value after a failed refresh and retries only after graceBackoffMs', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, ttlMs: 10_000, graceBackoffMs: 500, refreshThresholdMs: 5_000 });
    const { state, factory } = counter();
    await cache.getOrSet('k', factory);
    state.fail = true;
    clock.advance(6_000);
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    await tick();
    expect(state.runs).toBe(2);
    // Every hit within the back-off is served, without calling the failing source.
    for (let hit = 0; hit < 3; hit += 1) {
      expect(await cache.getOrSet('k', factory)).toBe('v1');
      await tick();
    }
    expect(state.runs).toBe(2);
    // The value is still fresh until its own expiry, not the back-off's end.
    expect((await cache.ttl('k'))?.ttlMs).toBe(4_000);
    clock.advance(501);
    state.fail = false;
    expect(await cache.getOrSet('k', factory)).toBe('v1');
    await tick();
    expect(state.runs).toBe(3);
    expect(await cache.getOrSet('k', factory)).toBe('v3');
  });

  it('is not undone by a failed XFetch refresh of a slow factory (it has its own back-off mark)', async () => {
    const clock = new ManualClock(0);
    // XFetch always fires (a huge β times any compute time), and its failure sets computeMs to 0.
    const cache = make({
      clock,
      ttlMs: 10_000,
      graceBackoffMs: 500,
      refreshThresholdMs: 2_000,
      earlyRefreshBeta: 1e12,
      random: () => 1e-9,
    });
    let runs = 0;
    let fail = true;
    const factory = async () => {
      runs += 1;
      if (fail && runs > 1) throw new Error('source down');
      return `v${runs}`;
    };
    await cache.getOrSet('k', factory);
    clock.advance(5_000);
    await cache.getOrSet('k', factory); // XFetch refresh, fails
    await tick();
    expect(runs).toBe(2);
    fail = false;
    clock.advance(3_500); // within the threshold, past the back-off
    await cache.getOrSet('k', factory);
    await tick();
    expect(runs).toBe(3);
  });

  it('does not refresh an entry without expiry', async () => {
    const clock = new ManualClock(0);
    const cache = make({ clock, refreshThresholdMs: 2_000 });
    const { state, factory } = counter();
    await cache.getOrSet('k', factory);
    clock.advance(1e9);
    await cache.getOrSet('k', factory);
    await tick();
    expect(state.runs).toBe(1);
  });

  it('refuses a negative or fractional threshold, per call and as a default', async () => {
    expect(() => make({ refreshThresholdMs: -1 })).toThrow(ConfigError);
    expect(() => make({ refreshThresholdMs: 1.5 })).toThrow(ConfigError);
    const cache = make();
    await expect(cache.getOrSet('k', () => 1, { refreshThresholdMs: -1 })).rejects.toBeInstanceOf(
      ConfigError,
    );
  });
});
