import { ManualClock } from '@noa/core';
import { generousDeadlineMs, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { redisUp, sharedRedisCaches } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * Found by model-two-instances.test.ts (seed -273616351): a lease holder whose factory failed
 * leaves a failure mark (`__failed:<key>`, graceBackoffMs) so that callers with a value in grace
 * serve it instead of calling the failing source again. The mark named only the key, so it also
 * covered values written after the failure: a key failed on, then written (the source was back),
 * then expired by the user, served the new value stale without calling the factory for the rest
 * of the mark, where `expire` promises that the next getOrSet recomputes.
 */
const { open } = sharedRedisCaches('failure-mark-after-change');
// On a Cluster the mark and the value live in different slots: the check reads both.
const { installed: hasRedisServer, client: cluster } = usePrivateCluster('a failure mark on a Cluster');
const clusterCaches: Cache[] = [];
afterAll(() => Promise.all(clusterCaches.map((cache) => cache.close())));
const openOnCluster = async (options: CacheOptions) => {
  const cache = new Cache({
    redis: cluster(),
    prefix: `${uniqueName('mark_cluster')}:`,
    operationTimeoutMs: generousDeadlineMs,
    ...options,
  });
  clusterCaches.push(cache);
  await cache.ready();
  return cache;
};

describe.each([
  { where: 'Redis', skip: !redisUp, opening: () => open },
  { where: 'a Cluster', skip: !hasRedisServer, opening: () => openOnCluster },
])('a failed holder mark and later writes of the key, on $where', ({ skip, opening }) => {
  it.skipIf(skip).each(['set', 'getOrSet'] as const)(
    'a value written by %s after the failure, then expired, is recomputed by the next getOrSet',
    async (write) => {
      const clock = new ManualClock(1_800_000_000_000);
      const cache = await opening()({ clock, ttlMs: 60_000, graceMs: 30_000, earlyRefreshBeta: 0 });
      const key = `after-${write}`;
      const down = async (): Promise<string> => {
        throw new Error('source down');
      };
      await expect(cache.getOrSet(key, down)).rejects.toMatchObject({ code: 'NOA_CACHE_FACTORY_FAILED' });

      // The source is back: the key is written anew.
      if (write === 'set') await cache.set(key, 'v1');
      else expect(await cache.getOrSet(key, async () => 'v1')).toBe('v1');
      await cache.expire(key);

      let runs = 0;
      const value = await cache.getOrSet(key, async () => {
        runs += 1;
        return 'v2';
      });
      expect({ value, runs }).toEqual({ value: 'v2', runs: 1 });
    },
  );
});
