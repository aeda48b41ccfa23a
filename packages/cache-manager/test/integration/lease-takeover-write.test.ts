import { delay } from '@noa/core';
import { generousDeadlineMs, uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { redisUp, sharedRedisCaches } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * A factory run that outlives its lease on instance A while instance B, finding the lease
 * expired, takes it over and runs the factory again, reading the source later. In process the
 * late run is superseded (docs/get-or-set.md, "A run slower than leaseMs": its value "is not
 * cached over the newer run's"); across instances the same must hold: A's late value, read from
 * the source before B's, must not be the one left in L2 because it happened to land first.
 */
function describeTakeover(
  backend: string,
  skip: boolean,
  open: (options: CacheOptions) => Promise<Cache>,
): void {
  describe.skipIf(skip)(`a run that outlived its lease, taken over by another instance (${backend})`, () => {
    const options = { ttlMs: 60_000, lock: { leaseMs: 150, timeoutMs: 5_000, pollMs: 20 } };

    it('does not cache its older value over the run that took the lease over', async () => {
      const a = await open({ ...options, bus: false });
      const b = await open(options);
      const reader = await open(options);
      let source = 'old';
      // A reads the source at once and returns after its lease has expired (150 ms).
      const slowA = async () => {
        const read = source;
        await delay(300);
        return read;
      };
      // B starts once A's lease has expired, reads the changed source, and ends after A.
      const slowerB = async () => {
        const read = source;
        await delay(250);
        return read;
      };
      const first = a.getOrSet('k', slowA);
      await delay(200);
      source = 'new';
      const second = b.getOrSet('k', slowerB);
      expect(await first).toBe('old');
      expect(await second).toBe('new');
      await delay(50);
      expect(await reader.get('k')).toBe('new');
      // A's own L1 does not keep its older value either.
      expect(a.getLocal('k')).toBeUndefined();
    });

    it('getOrSetMany: a key whose lease was taken over keeps the newer run’s value, the others are cached', async () => {
      const a = await open({ ...options, bus: false });
      const b = await open(options);
      const reader = await open(options);
      let source = 'old';
      const slowMany = async (keys: readonly string[]) => {
        const read = source;
        await delay(300);
        return keys.map((key) => `${key}:${read}`);
      };
      const slowerB = async () => {
        const read = source;
        await delay(250);
        return `x:${read}`;
      };
      const batch = a.getOrSetMany(['x', 'y'], slowMany);
      await delay(200);
      source = 'new';
      const second = b.getOrSet('x', slowerB);
      expect(await batch).toEqual(['x:old', 'y:old']);
      expect(await second).toBe('x:new');
      await delay(50);
      expect(await reader.getMany(['x', 'y'])).toEqual(['x:new', 'y:old']);
    });

    it('still caches a run that outlived its lease when no other instance took it over', async () => {
      const a = await open({ ...options, bus: false });
      const reader = await open(options);
      // Always slower than the lease: were such a run never cached, every call would run it again.
      const slow = async () => {
        await delay(250);
        return 'slow';
      };
      expect(await a.getOrSet('alone', slow)).toBe('slow');
      expect(await reader.get('alone')).toBe('slow');
    });
  });
}

const shared = sharedRedisCaches('lease-takeover');
describeTakeover('Redis', !redisUp, (options) => shared.open(options));

const { installed, client: cluster } = usePrivateCluster('a lease taken over on a Redis Cluster');
const clusterCaches: Cache[] = [];
const clusterPrefix = `${uniqueName('cm_takeover_cluster')}:`;
afterAll(async () => {
  await Promise.all(clusterCaches.map((cache) => cache.close()));
});
describeTakeover('Redis Cluster', !installed, async (options) => {
  const cache = new Cache({
    redis: cluster() as Cluster,
    prefix: clusterPrefix,
    operationTimeoutMs: generousDeadlineMs,
    ...options,
  });
  clusterCaches.push(cache);
  await cache.ready();
  return cache;
});
