import { delay } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Cache, FactoryTimeoutError } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/** How many of each kind of libuv resource (timers, sockets) the process holds now. */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** The kinds of which the process now holds more than in `baseline`. */
function grown(baseline: Map<string, number>): string[] {
  return [...resources()].filter(([kind, count]) => count > (baseline.get(kind) ?? 0)).map(([kind]) => kind);
}

/**
 * After `close()` nothing of the cache's is left for the process to wait on (bentocache's
 * `disconnect()` promise): its timers and its bus connection are gone once its background work
 * settled, so a service that closes its cache on SIGTERM exits.
 */
describe.skipIf(!redisUp)('close() on Redis', () => {
  it('leaves no timer or socket of its own, after a use of every tier', async () => {
    const prefix = testPrefix('close-handles');
    const redis = new Redis(redisUrl);
    await redis.ping();
    await delay(50);
    const baseline = resources();
    const cache = new Cache({
      redis,
      prefix,
      ttlMs: 60_000,
      graceMs: 60_000,
      l1: { maxTtlMs: 1_000 },
      operationTimeoutMs: generousDeadlineMs,
    });
    try {
      await cache.ready();
      await cache.set('a', 1, { tags: ['t'] });
      await cache.getOrSet('b', async () => 2, { tags: ['t'] });
      await cache.getMany(['a', 'b', 'c']);
      await expect(
        cache.getOrSet('slow', () => delay(200).then(() => 3), { hardTimeoutMs: 10 }),
      ).rejects.toBeInstanceOf(FactoryTimeoutError);
      await cache.expireByTag('t');
      await cache.deleteByTag('t');
      expect(grown(baseline).length).toBeGreaterThan(0);
    } finally {
      await cache.close();
    }
    const deadline = Date.now() + 2_000;
    while (grown(baseline).length > 0 && Date.now() < deadline) await delay(20);
    expect(grown(baseline)).toEqual([]);
    await dropPrefix(prefix);
    redis.disconnect();
  });
});
