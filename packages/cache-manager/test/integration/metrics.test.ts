import { delay, ManualClock } from '@noa/core';
import { generousDeadlineMs, recordingLogger, startPrivateRedis } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions, FactoryError } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { counters, fromRegistry } from './registry-counters.js';

/** The value of one sample line (`name{labels} value`), 0 when the series does not exist yet. */
async function sample(registry: Registry, series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe.skipIf(!redisUp)('metrics per tier, on a real Redis', () => {
  const prefix = testPrefix('cm_metrics');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const make = async (options: CacheOptions) => {
    const cache = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('times every Redis call of a deleteByTag (its tag set pages too) under operation="delete_tag"', async () => {
    const registry = new Registry();
    const cache = await make({ registry });
    await cache.set('tagged-metric', 1, { tags: ['metrics-tag'] });
    expect(await cache.deleteByTag('metrics-tag')).toBe(1);
    const duration = 'noa_cache_manager_operation_duration_seconds_count';
    // SSCAN, value read, compare-and-set, SREM, second read: five calls for a one-key tag.
    expect(await sample(registry, `${duration}{cache="cache",tier="l2",operation="delete_tag"}`)).toBe(5);
    // `tag_members` is expireByTag's: a dashboard of it must not count deletes.
    expect(await sample(registry, `${duration}{cache="cache",tier="l2",operation="tag_members"}`)).toBe(0);
  });

  it('counts L1 and L2 hits and misses, L2 latency and written bytes under separate tier labels', async () => {
    const writerMetrics = new Registry();
    const readerMetrics = new Registry();
    const writer = await make({ registry: writerMetrics });
    const reader = await make({ registry: readerMetrics });
    // The write's bus message must not evict the reader's copy after the reads below.
    const applied = new Promise<void>((resolve) => {
      const stop = reader.onInvalidation(() => {
        stop();
        resolve();
      });
    });
    await writer.set('tiers', { n: 1 });
    await applied;
    expect(await reader.get('tiers')).toEqual({ n: 1 }); // L1 miss, L2 hit
    expect(await reader.get('tiers')).toEqual({ n: 1 }); // L1 hit
    expect(await reader.get('absent')).toBeUndefined(); // L1 miss, L2 miss

    const requests = 'noa_cache_manager_requests_total';
    expect(await sample(readerMetrics, `${requests}{cache="cache",tier="l1",result="hit"}`)).toBe(1);
    expect(await sample(readerMetrics, `${requests}{cache="cache",tier="l1",result="miss"}`)).toBe(2);
    expect(await sample(readerMetrics, `${requests}{cache="cache",tier="l2",result="hit"}`)).toBe(1);
    expect(await sample(readerMetrics, `${requests}{cache="cache",tier="l2",result="miss"}`)).toBe(1);
    // Each get's L2 read is a `get`, batched with the reads of its turn or not; a getMany's is a `get_many`.
    const l2Reads =
      'noa_cache_manager_operation_duration_seconds_count{cache="cache",tier="l2",operation="get"}';
    expect(await sample(readerMetrics, l2Reads)).toBe(2);
    await reader.getMany(['absent', 'absent too']);
    expect(
      await sample(
        readerMetrics,
        'noa_cache_manager_operation_duration_seconds_count{cache="cache",tier="l2",operation="get_many"}',
      ),
    ).toBe(1);
    expect(
      await sample(writerMetrics, 'noa_cache_manager_written_bytes_total{cache="cache",tier="l2"}'),
    ).toBeGreaterThan(0);
    expect(await sample(readerMetrics, 'noa_cache_manager_entries{cache="cache",tier="l1"}')).toBe(1);
    const held = reader.stats().l1.bytes;
    expect(held).toBeGreaterThan(0);
    expect(await sample(readerMetrics, 'noa_cache_manager_stored_bytes{cache="cache",tier="l1"}')).toBe(held);
  });

  it('counts L1 evictions, stale values served, factory runs and bus messages', async () => {
    const registry = new Registry();
    const clock = new ManualClock(Date.now());
    const cache = await make({
      registry,
      clock,
      ttlMs: 1_000,
      graceMs: 60_000,
      graceBackoffMs: 0,
      l1: { maxEntries: 2 },
    });
    const other = await make({ registry: new Registry() });
    await cache.getOrSet('stale', () => 'v1');
    clock.advance(2_000);
    expect(await cache.getOrSet('stale', () => Promise.reject(new Error('source down')))).toBe('v1');
    for (const key of ['e1', 'e2', 'e3']) await cache.set(key, key);

    expect(
      await sample(registry, 'noa_cache_manager_stale_served_total{cache="cache",reason="factory_error"}'),
    ).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_factory_runs_total{cache="cache",result="ok"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_factory_runs_total{cache="cache",result="error"}')).toBe(
      1,
    );
    expect(
      await sample(registry, 'noa_cache_manager_evictions_total{cache="cache",tier="l1",reason="evicted"}'),
    ).toBeGreaterThan(0);
    expect(
      await sample(registry, 'noa_cache_manager_bus_messages_total{cache="cache",direction="sent"}'),
    ).toBeGreaterThan(0);

    await other.set('e1', 'changed');
    const deadline = Date.now() + 5_000;
    while (
      (await sample(registry, 'noa_cache_manager_bus_messages_total{cache="cache",direction="received"}')) ===
        0 &&
      Date.now() < deadline
    ) {
      await delay(10);
    }
    expect(
      await sample(registry, 'noa_cache_manager_bus_messages_total{cache="cache",direction="received"}'),
    ).toBeGreaterThan(0);
  });

  it('treats a corrupt or foreign value in Redis as a miss: counted, logged, then recomputed', async () => {
    const registry = new Registry();
    const logger = recordingLogger();
    const cache = await make({ registry, logger });
    await redis!.set(`${prefix}v:foreign`, 'written by another program');
    const decodeErrors = 'noa_cache_manager_errors_total{cache="cache",tier="l2",operation="decode"}';
    expect(await cache.get('foreign')).toBeUndefined();
    expect(await sample(registry, decodeErrors)).toBe(1);
    // A miss reads L2 again once it holds the lease: one more undecodable read, or two.
    expect(await cache.getOrSet('foreign', () => 'recomputed')).toBe('recomputed');
    expect(await sample(registry, decodeErrors)).toBeGreaterThan(1);
    expect(await (await make({})).get('foreign')).toBe('recomputed');
    expect(logger.messages('warn')).toContain('could not decode an L2 value; treating it as a miss');
  });

  it('cache.stats() agrees with every series after a run of mixed calls over both tiers', async () => {
    const registry = new Registry();
    const clock = new ManualClock(Date.now());
    const cache = await make({
      registry,
      clock,
      ttlMs: 1_000,
      graceMs: 60_000,
      graceBackoffMs: 0,
      earlyRefreshBeta: 0,
      l1: { policy: 'lru', maxEntries: 3 },
    });
    const writer = await make({ ttlMs: 60_000 });
    await writer.set('from-l2', 'w'); // only in L2 (and the writer's L1) for `cache`
    await writer.set('batch:1', 1);

    await cache.set('a', 'A');
    expect(await cache.get('a')).toBe('A'); // L1 hit
    expect(await cache.get('from-l2')).toBe('w'); // L1 miss, L2 hit
    expect(await cache.get('absent')).toBeUndefined(); // miss in both
    expect(await cache.has('a')).toBe(true);
    expect(await cache.getMany(['a', 'batch:1', 'nothing'])).toEqual(['A', 1, undefined]);
    expect(await cache.getOrSet('computed', () => 'c')).toBe('c'); // miss, factory runs
    expect(await cache.getOrSet('computed', () => 'not run')).toBe('c'); // L1 hit
    expect(
      await cache.getOrSetMany(['m1', 'm2', 'computed'], (keys) => keys.map((key) => `${key}!`)),
    ).toEqual(['m1!', 'm2!', 'c']);
    clock.advance(2_000); // every entry of `cache` is now stale (in grace)
    expect(await cache.getOrSet('m2', () => Promise.reject(new Error('source down')))).toBe('m2!');
    await expect(cache.getOrSet('never', () => Promise.reject(new Error('down')))).rejects.toBeInstanceOf(
      FactoryError,
    );
    await redis!.set(`${prefix}v:foreign`, 'written by another program');
    expect(await cache.get('foreign')).toBeUndefined(); // a decode error, counted under L2 errors

    const stats = cache.stats();
    // The run above is known call by call, so these are exact; the registry must say the same.
    expect(stats.hits.l1).toBeGreaterThanOrEqual(4);
    expect(stats.hits.l2).toBeGreaterThanOrEqual(2);
    expect(stats.misses).toBeGreaterThan(0);
    expect(stats.staleServed.factory_error).toBe(1);
    expect(stats.factoryRuns).toBe(4);
    expect(stats.factoryErrors).toBe(2);
    expect(stats.l2Errors).toBe(1);
    expect(stats.evictions.evicted).toBeGreaterThan(0);
    expect(stats.hitRate).toBeCloseTo(
      (stats.hits.l1 + stats.hits.l2) / (stats.hits.l1 + stats.hits.l2 + stats.misses),
    );
    expect(counters(stats)).toEqual(await fromRegistry(registry));
  });

  it('reports the breaker state from the start, not only after its first change', async () => {
    const registry = new Registry();
    await make({ registry });
    expect(await sample(registry, 'noa_cache_manager_breaker_state{cache="cache",state="closed"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_breaker_state{cache="cache",state="open"}')).toBe(0);
  });

  it('counts, on a registry shared by two caches, each breaker in its own state until the cache closes', async () => {
    const registry = new Registry();
    const healthy = await make({ registry });
    const server = await startPrivateRedis();
    const doomedClient = new Redis(server.url, { maxRetriesPerRequest: 1 });
    doomedClient.on('error', () => {});
    const doomed = new Cache({
      redis: doomedClient,
      prefix,
      registry,
      bus: false,
      operationTimeoutMs: 200,
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 60_000 },
    });
    try {
      await doomed.ready();
      const state = (name: string) =>
        sample(registry, `noa_cache_manager_breaker_state{cache="cache",state="${name}"}`);
      expect(await state('closed')).toBe(2);
      await server.kill();
      await doomed.get('anything');
      expect(doomed.stats().l2).toBe('open');
      expect([await state('closed'), await state('open')]).toEqual([1, 1]);
      // The healthy cache's calls change nothing: its breaker stays closed.
      await healthy.set('still', 1);
      expect([await state('closed'), await state('open')]).toEqual([1, 1]);
      await doomed.close();
      expect([await state('closed'), await state('open')]).toEqual([1, 0]);
    } finally {
      await doomed.close();
      doomedClient.disconnect();
      await server.stop();
    }
  });

  it('counts waits for another instance computing the same key', async () => {
    const registry = new Registry();
    const [holder, waiter] = await Promise.all([make({ registry }), make({ registry })]);
    let runs = 0;
    const slow = async () => {
      runs += 1;
      await delay(150);
      return 'computed';
    };
    // Whichever instance takes the lease second waits for the other's value.
    expect(await Promise.all([holder.getOrSet('waited', slow), waiter.getOrSet('waited', slow)])).toEqual([
      'computed',
      'computed',
    ]);
    expect(runs).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_lock_waits_total{cache="cache",result="value"}')).toBe(
      1,
    );
  });
});
