import { ManualClock } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { counting, dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

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
    const made = Array.from(
      { length: count },
      () => new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options }),
    );
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

  it('softTimeoutMs: 0: after a run fails on one instance, the others do not call the failing source within the back-off', async () => {
    const clock = new ManualClock(Date.now());
    const group = await instances(3, {
      clock,
      ttlMs: 1_000,
      graceMs: 60_000,
      graceBackoffMs: 5_000,
      softTimeoutMs: 0,
    });
    await group[0]!.getOrSet('soft0-failing', () => 'old');
    await Promise.all(group.map((cache) => cache.get('soft0-failing')));
    clock.advance(2_000);
    let runs = 0;
    const factory = async () => {
      runs += 1;
      throw new Error('source down');
    };
    expect(await group[0]!.getOrSet('soft0-failing', factory)).toBe('old');
    await until(() => runs === 1);
    await new Promise((resolve) => setTimeout(resolve, 50)); // its failure mark and lease release
    // The lease is free: each other instance, its value in grace, takes it, and finds the mark.
    for (const cache of group) expect(await cache.getOrSet('soft0-failing', factory)).toBe('old');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toBe(1);
    // Each backed the value off: calls within the back-off are L1 hits, no lease, no source.
    for (const cache of group) expect((await cache.ttl('soft0-failing'))?.ttlMs).toBe(5_000);
  });

  it('refreshThresholdMs refreshes a key once across instances, each serving its current value meanwhile', async () => {
    const clock = new ManualClock(Date.now());
    const group = await instances(3, { clock, ttlMs: 10_000, refreshThresholdMs: 2_000 });
    await group[0]!.getOrSet('ahead', () => 'old');
    await Promise.all(group.map((cache) => cache.get('ahead')));
    clock.advance(8_500);
    const slow = deferred<string>();
    let runs = 0;
    const factory = () => {
      runs += 1;
      return slow.promise;
    };
    const first = await Promise.all(group.map((cache) => cache.getOrSet('ahead', factory)));
    expect(first).toEqual(['old', 'old', 'old']);
    await until(() => runs === 1);
    // Hits on every instance while the one refresh runs: still the current value, no second run.
    for (let round = 0; round < 3; round += 1) {
      expect(await Promise.all(group.map((cache) => cache.getOrSet('ahead', factory)))).toEqual([
        'old',
        'old',
        'old',
      ]);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(runs).toBe(1);
    slow.resolve('new');
    for (const cache of group) await until(async () => (await cache.getOrSet('ahead', factory)) === 'new');
    expect(runs).toBe(1);
    expect((await group[2]!.ttl('ahead'))?.ttlMs).toBe(10_000);
  });

  it('a value another instance wrote since is taken as refreshed whatever its clock says (write ids, not createdAt)', async () => {
    // B's clock runs 1 s behind A's: B's newer write carries an older createdAt than A's value.
    const start = Date.now();
    const clockA = new ManualClock(start);
    const clockB = new ManualClock(start - 1_000);
    // A hears no bus: B's message has not arrived when A's hit decides to refresh.
    const [a] = await instances(1, { clock: clockA, ttlMs: 1_000, refreshThresholdMs: 200, bus: false });
    const [b] = await instances(1, { clock: clockB, ttlMs: 1_000 });
    await a!.set('skewed', 'old');
    clockA.advance(850);
    clockB.advance(850);
    // Fresh for A for 100 ms more: within A's threshold too, so only the check of who wrote it
    // (not a later expiry) tells A that it is not the value it decided to refresh.
    await b!.set('skewed', 'refreshed by B', { ttlMs: 1_100 });
    let runs = 0;
    const factory = async () => {
      runs += 1;
      return 'refreshed by A';
    };
    // A's hit is past its refresh threshold: its refresh takes the lease, reads L2, and finds
    // B's write, another write than the one it holds.
    expect(await a!.getOrSet('skewed', factory)).toBe('old');
    await until(() => a!.getLocal('skewed') !== 'old');
    expect(a!.getLocal('skewed')).toBe('refreshed by B');
    expect(runs).toBe(0);
    expect(await b!.get('skewed')).toBe('refreshed by B');
  });

  it('after a failed refresh-ahead on one instance, the others do not call the failing source within the back-off', async () => {
    const clock = new ManualClock(Date.now());
    const group = await instances(3, {
      clock,
      ttlMs: 10_000,
      graceBackoffMs: 5_000,
      refreshThresholdMs: 5_000,
      // Under load a Redis call past the default 500 ms reads as a miss: a foreground run.
      operationTimeoutMs: 5_000,
    });
    await group[0]!.getOrSet('failing', () => 'old');
    await Promise.all(group.map((cache) => cache.get('failing')));
    clock.advance(6_000);
    let runs = 0;
    const factory = async () => {
      runs += 1;
      throw new Error('source down');
    };
    expect(await group[0]!.getOrSet('failing', factory)).toBe('old');
    await until(() => runs === 1);
    // Its failure mark and lease release (50 ms was not enough on a loaded machine).
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const cache of group) expect(await cache.getOrSet('failing', factory)).toBe('old');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toBe(1);
    // The value stays fresh to its own expiry on every instance.
    for (const cache of group) expect((await cache.ttl('failing'))?.ttlMs).toBe(4_000);
  });

  it('refreshThresholdMs with a shorter l1.maxTtlMs: the capped L1 copy costs no lease per hit, and the key is still refreshed ahead', async () => {
    const clock = new ManualClock(Date.now());
    const { client, calls } = counting(redis!, ['set']);
    const cache = new Cache({
      redis: client,
      prefix,
      clock,
      ttlMs: 10_000,
      refreshThresholdMs: 2_000,
      l1: { maxTtlMs: 1_000 },
      // Under load an L2 read past the default 500 ms reads as a miss: the factory runs again.
      operationTimeoutMs: 5_000,
    });
    caches.push(cache);
    await cache.ready();
    let runs = 0;
    const factory = () => `v${++runs}`;
    await cache.getOrSet('capped', factory);
    clock.advance(500); // the L1 copy has 500 ms left, L2's value 9.5 s
    calls.clear();
    for (let hit = 0; hit < 10; hit += 1) {
      expect(await cache.getOrSet('capped', factory)).toBe('v1');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(calls.get('set') ?? 0).toBeLessThanOrEqual(1);
    expect(runs).toBe(1);
    clock.advance(8_000); // L2's value has 1.5 s left: within the threshold
    await cache.getOrSet('capped', factory);
    await cache.getOrSet('capped', factory);
    await until(() => runs === 2);
    await until(async () => (await cache.getOrSet('capped', factory)) === 'v2');
  });
});
