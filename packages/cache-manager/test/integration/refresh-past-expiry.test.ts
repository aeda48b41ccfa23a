import { delay } from '@noa/core';
import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { redisUp, sharedRedisCaches } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';
import { total } from './registry-counters.js';

/**
 * An early refresh (refresh-ahead here; also a run past a soft timeout) whose factory is still
 * running when the value it refreshes reaches the end of its grace, its physical TTL in Redis
 * (README Consistency, "A run that outlasts the value it replaces"). Its write is a
 * compare-and-set against the value it read; before, the value expired in Redis during the run,
 * the write found the key gone and failed, and the next call ran the factory again. Now the run
 * extends the physical expiry of the value it read as it starts (only if the key still holds
 * it), so its write lands. A delete, tag delete or another write during the run still wins:
 * absence is not taken for "unchanged".
 *
 * A (the refresher) hears no bus (`bus: false`): B's changes reach it only through Redis, so
 * the compare-and-set decides, deterministically.
 */

/** When a hook of the factory runs, from its start (it runs 1.5 s; the value's ttl ends at about 850 ms). */
interface During {
  atMs: number;
  run: (caches: { b: Cache; c: Cache }, key: string) => Promise<unknown>;
}

function describeRefreshPastExpiry(
  backend: string,
  skip: boolean,
  open: (options: CacheOptions) => Promise<Cache>,
): void {
  // Concurrent: every case has keys and tags of its own and waits out real TTLs (1.5 s runs), so
  // one after another they took 20 s per backend.
  describe.skipIf(skip)(
    `an early refresh that outlives the value it refreshes (${backend})`,
    { concurrent: true },
    () => {
      /** Sets `key` (ttl 1 s), then starts its early refresh on A with a 1.5 s factory; resolves once its write is done. */
      async function refreshPastTtl(
        key: string,
        {
          graceMs = 0,
          during = [] as During[],
          onA = {},
          slidingTtlMs = undefined as number | undefined,
        } = {},
      ) {
        const a = await open({ ...onA, bus: false });
        const b = await open({});
        const c = await open({});
        await a.set(key, 'first', { ttlMs: 1_000, graceMs, ...(slidingTtlMs ? { slidingTtlMs } : {}) });
        await delay(150);
        let runs = 0;
        let returned!: () => void;
        const done = new Promise<void>((resolve) => {
          returned = resolve;
        });
        const factory = async () => {
          runs += 1;
          let at = 0;
          try {
            for (const hook of during) {
              await delay(hook.atMs - at);
              at = hook.atMs;
              await hook.run({ b, c }, key);
            }
            await delay(1_500 - at);
            return 'refreshed';
          } finally {
            returned();
          }
        };
        const call = { ttlMs: 1_000, graceMs, refreshThresholdMs: 900 };
        expect(await a.getOrSet(key, factory, call)).toBe('first');
        await done;
        // The run's compare-and-set write follows the factory: A's close() waits for its background
        // work (the refresh, write and lease release included), whatever the machine's load.
        await a.close();
        return { a, b, c, runs: () => runs, factory, call };
      }

      it('with no grace the refresh is cached for every instance, the next call runs no factory', async () => {
        const { c, runs, factory, call } = await refreshPastTtl('no-grace');
        expect(runs()).toBe(1);
        expect(await c.get('no-grace')).toBe('refreshed');
        expect(await c.getOrSet('no-grace', factory, call)).toBe('refreshed');
        expect(runs()).toBe(1);
      });

      it('the extended value is not served once its own times say it is gone', async () => {
        const seen: unknown[] = [];
        const { c } = await refreshPastTtl('not-served', {
          during: [
            {
              // Past the value's ttl (and its grace of 0): still in Redis, but no reader serves it.
              atMs: 1_100,
              run: async ({ c }, key) => {
                seen.push(await c.get(key), await c.has(key), await c.ttl(key), (await c.getMany([key]))[0]);
              },
            },
          ],
        });
        expect(seen).toEqual([undefined, false, undefined, undefined]);
        expect(await c.get('not-served')).toBe('refreshed');
      });

      it('a sliding value that another instance slides during the run keeps its extension', async () => {
        // The slide moves the value's TTL to its new end of grace (here shorter than the extension).
        const { c, runs } = await refreshPastTtl('slid', {
          slidingTtlMs: 500,
          during: [{ atMs: 150, run: ({ c }, key) => c.get(key) }],
        });
        expect(runs()).toBe(1);
        expect(await c.get('slid')).toBe('refreshed');
      });

      it('a run past a soft timeout (the value in grace served) whose grace ends during it is cached', async () => {
        const a = await open({ bus: false });
        const c = await open({});
        const written = { ttlMs: 100, graceMs: 900 };
        await a.set('soft', 'first', written);
        await delay(150);
        let returned!: () => void;
        const done = new Promise<void>((resolve) => {
          returned = resolve;
        });
        const factory = async () => {
          await delay(1_500);
          returned();
          return 'refreshed';
        };
        expect(await a.getOrSet('soft', factory, { ttlMs: 60_000, softTimeoutMs: 0 })).toBe('first');
        await done;
        // The run goes on in the background (its caller was served): close() waits for its write.
        await a.close();
        expect(await c.get('soft')).toBe('refreshed');
      });

      it('a getOrSetMany run whose factory outlasts the grace of the values it replaces is cached', async () => {
        const a = await open({ bus: false });
        const c = await open({});
        const written = { ttlMs: 100, graceMs: 400, tags: ['t-many'] };
        await a.setMany([
          { key: 'many-1', value: 'first', ...written },
          { key: 'many-2', value: 'first', ...written },
        ]);
        await delay(150);
        let runs = 0;
        const factoryMany = async (keys: readonly string[]) => {
          runs += 1;
          // Past the values' grace (their physical TTL in Redis) by the time the run writes.
          await delay(1_000);
          return keys.map(() => 'refreshed');
        };
        expect(
          await a.getOrSetMany(['many-1', 'many-2'], factoryMany, { ttlMs: 60_000, tags: ['t-many'] }),
        ).toEqual(['refreshed', 'refreshed']);
        // writeMode 'await': the writes landed before the call returned.
        expect(await c.getMany(['many-1', 'many-2'])).toEqual(['refreshed', 'refreshed']);
        expect(runs).toBe(1);
      });

      it('with locks off the refresh is cached too', async () => {
        const { c, runs } = await refreshPastTtl('locks-off', { onA: { lock: { enabled: false } } });
        expect(runs()).toBe(1);
        expect(await c.get('locks-off')).toBe('refreshed');
      });

      it.each([
        ['while the value is fresh', 300],
        ['once the value is past its ttl', 1_100],
      ])('a delete on another instance %s wins over the refresh', async (_, atMs) => {
        const key = `deleted-${atMs}`;
        const { a, c, runs, factory, call } = await refreshPastTtl(key, {
          during: [{ atMs, run: ({ b }, key) => b.delete(key) }],
        });
        expect(await c.get(key)).toBeUndefined();
        // A does not keep its result either (its write lost).
        expect(a.getLocal(key)).toBeUndefined();
        expect(await c.getOrSet(key, factory, call)).toBe('refreshed');
        expect(runs()).toBe(2);
      });

      it.each([
        ['while the value is fresh', 300],
        ['once the value is past its ttl', 1_100],
      ])('another instance’s write %s wins over the refresh', async (_, atMs) => {
        const key = `written-${atMs}`;
        const { c } = await refreshPastTtl(key, {
          during: [{ atMs, run: ({ b }, key) => b.set(key, 'B', { ttlMs: 60_000 }) }],
        });
        expect(await c.get(key)).toBe('B');
      });

      it('a tag delete on another instance once the value is past its ttl wins over the refresh', async () => {
        const key = 'tag-deleted';
        const a = await open({ bus: false });
        const b = await open({});
        const c = await open({});
        const written = { ttlMs: 1_000, graceMs: 0, tags: ['t-past'] };
        const call = { ...written, refreshThresholdMs: 900 };
        await a.set(key, 'first', written);
        await delay(150);
        let returned!: () => void;
        const done = new Promise<void>((resolve) => {
          returned = resolve;
        });
        const factory = async () => {
          await delay(1_100);
          // The value's tag set would have expired with it: the refresh extends it too.
          await b.deleteByTag('t-past');
          await delay(400);
          returned();
          return 'refreshed';
        };
        expect(await a.getOrSet(key, factory, call)).toBe('first');
        await done;
        await a.close();
        expect(await c.get(key)).toBeUndefined();
      });

      it('with a grace longer than the run the refresh is cached for every instance', async () => {
        const { c, runs } = await refreshPastTtl('graced', { graceMs: 10_000 });
        expect(runs()).toBe(1);
        expect(await c.get('graced')).toBe('refreshed');
      });
    },
  );
}

const shared = sharedRedisCaches('refresh-past-expiry');
describeRefreshPastExpiry('Redis', !redisUp, (options) => shared.open(options));

const { installed, client: cluster } = usePrivateCluster('an early refresh past expiry on a Redis Cluster');
const clusterCaches: Cache[] = [];
const clusterPrefix = `${uniqueName('cm_refresh_cluster')}:`;
afterAll(async () => {
  await Promise.all(clusterCaches.map((cache) => cache.close()));
});
describeRefreshPastExpiry('Redis Cluster', !installed, async (options) => {
  const cache = new Cache({ redis: cluster() as Cluster, prefix: clusterPrefix, ...options });
  clusterCaches.push(cache);
  await cache.ready();
  return cache;
});

/**
 * The extension failing (here: the user may not run PEXPIRE, which ACLs refuse inside scripts
 * too) does not fail the refresh, even with `onBackendError: 'throw'`: it is counted as a
 * degraded operation, and the refresh goes on as before the extension existed. A private server:
 * ACL users must not reach other suites.
 */
const { redis: server, skip: noServer } = await startPrivateRedisOrSkip();
describe.skipIf(noServer !== undefined)('an early refresh whose extension fails', () => {
  const admin = new Redis(server?.url ?? 'redis://127.0.0.1:1', { lazyConnect: true });
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  beforeAll(async () => {
    await admin.call('ACL', 'SETUSER', 'no-pexpire', 'on', '>secret', '~*', '&*', '+@all', '-pexpire');
  });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server?.stop();
  });

  it('is counted and the refresh is still cached', async () => {
    const client = new Redis(server!.url, { username: 'no-pexpire', password: 'secret' });
    client.on('error', () => {});
    clients.push(client);
    const registry = new Registry();
    const cache = new Cache({ redis: client, registry, onBackendError: 'throw', bus: false });
    caches.push(cache);
    await cache.ready();
    const written = { ttlMs: 1_000, graceMs: 10_000 };
    const call = { ...written, refreshThresholdMs: 900 };
    await cache.set('k', 'first', written);
    await delay(150);
    let returned!: () => void;
    const done = new Promise<void>((resolve) => {
      returned = resolve;
    });
    const factory = async () => {
      await delay(100);
      returned();
      return 'refreshed';
    };
    expect(await cache.getOrSet('k', factory, call)).toBe('first');
    await done;
    // close() waits for the refresh (its extension and write) running in the background.
    await cache.close();
    expect(
      await total(registry, 'noa_cache_manager_degraded_operations_total', { operation: 'refresh_extend' }),
    ).toBe(1);
    const other = new Cache({ redis: client, bus: false });
    caches.push(other);
    expect(await other.get('k')).toBe('refreshed');
  });
});
