import { delay, ManualClock } from '@noa/core';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

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
    const cache = new Cache({ redis, prefix, ...options });
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
    expect(await sample(readerMetrics, `${requests}{tier="l1",result="hit"}`)).toBe(1);
    expect(await sample(readerMetrics, `${requests}{tier="l1",result="miss"}`)).toBe(2);
    expect(await sample(readerMetrics, `${requests}{tier="l2",result="hit"}`)).toBe(1);
    expect(await sample(readerMetrics, `${requests}{tier="l2",result="miss"}`)).toBe(1);
    expect(await readerMetrics.metrics()).toMatch(
      /noa_cache_manager_operation_duration_seconds_count\{tier="l2",operation="[a-z_]+"\} [1-9]/,
    );
    expect(await sample(writerMetrics, 'noa_cache_manager_written_bytes_total{tier="l2"}')).toBeGreaterThan(
      0,
    );
    expect(await sample(readerMetrics, 'noa_cache_manager_entries{tier="l1"}')).toBe(1);
    const held = reader.stats().l1.bytes;
    expect(held).toBeGreaterThan(0);
    expect(await sample(readerMetrics, 'noa_cache_manager_stored_bytes{tier="l1"}')).toBe(held);
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

    expect(await sample(registry, 'noa_cache_manager_stale_served_total{reason="factory_error"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_factory_runs_total{result="ok"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_factory_runs_total{result="error"}')).toBe(1);
    expect(
      await sample(registry, 'noa_cache_manager_evictions_total{tier="l1",reason="evicted"}'),
    ).toBeGreaterThan(0);
    expect(await sample(registry, 'noa_cache_manager_bus_messages_total{direction="sent"}')).toBeGreaterThan(
      0,
    );

    await other.set('e1', 'changed');
    const deadline = Date.now() + 5_000;
    while (
      (await sample(registry, 'noa_cache_manager_bus_messages_total{direction="received"}')) === 0 &&
      Date.now() < deadline
    ) {
      await delay(10);
    }
    expect(
      await sample(registry, 'noa_cache_manager_bus_messages_total{direction="received"}'),
    ).toBeGreaterThan(0);
  });

  it('treats a corrupt or foreign value in Redis as a miss: counted, logged, then recomputed', async () => {
    const registry = new Registry();
    const warnings: string[] = [];
    const ignore = () => {};
    const logger = {
      debug: ignore,
      info: ignore,
      error: ignore,
      warn: (message: string) => warnings.push(message),
    };
    const cache = await make({ registry, logger });
    await redis!.set(`${prefix}v:foreign`, 'written by another program');
    const decodeErrors = 'noa_cache_manager_errors_total{tier="l2",operation="decode"}';
    expect(await cache.get('foreign')).toBeUndefined();
    expect(await sample(registry, decodeErrors)).toBe(1);
    // A miss reads L2 again once it holds the lease: one more undecodable read, or two.
    expect(await cache.getOrSet('foreign', () => 'recomputed')).toBe('recomputed');
    expect(await sample(registry, decodeErrors)).toBeGreaterThan(1);
    expect(await (await make({})).get('foreign')).toBe('recomputed');
    expect(warnings).toContain('could not decode an L2 value; treating it as a miss');
  });

  it('reports the breaker state from the start, not only after its first change', async () => {
    const registry = new Registry();
    await make({ registry });
    expect(await sample(registry, 'noa_cache_manager_breaker_state{state="closed"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_breaker_state{state="open"}')).toBe(0);
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
    expect(await sample(registry, 'noa_cache_manager_lock_waits_total{result="value"}')).toBe(1);
  });
});
