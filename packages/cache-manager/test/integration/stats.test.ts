import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { redisUp, sharedRedisCaches } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';
import { counters, fromRegistry } from './registry-counters.js';

// The healthy-Redis half of the agreement (every counter after mixed calls) is in metrics.test.ts.
describe('cache.stats() agrees with the prom-client metrics while Redis fails', () => {
  const hasRedisServer = redisServerInstalled('the degraded-operation counters');
  it.skipIf(!hasRedisServer)(
    'while a private Redis is paused: timeouts, errors and breaker skips',
    async () => {
      const server: PrivateRedis = await startPrivateRedis();
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      const registry = new Registry();
      const cache = new Cache({
        redis: client,
        prefix: 'stats:',
        registry,
        ttlMs: 60_000,
        operationTimeoutMs: 100,
        breaker: { consecutiveFailures: 2, halfOpenAfterMs: 60_000 },
      });
      try {
        await cache.ready();
        await cache.set('kept', 'in L1');
        await server.pause(1_500);
        for (let round = 0; round < 4; round += 1) {
          expect(await cache.get('kept')).toBe('in L1');
          expect(await cache.getOrSet(`cold:${round}`, () => round)).toBe(round);
        }
        const stats = cache.stats();
        expect(stats.l2Timeouts).toBeGreaterThan(0);
        expect(stats.degraded.breakerOpen).toBeGreaterThan(0);
        expect(stats.degraded.total).toBeGreaterThanOrEqual(stats.l2Timeouts + stats.degraded.breakerOpen);
        expect(stats.l2Errors).toBeGreaterThanOrEqual(stats.l2Timeouts);
        expect(counters(stats)).toEqual(await fromRegistry(registry));
      } finally {
        await cache.close();
        client.disconnect();
        await server.stop();
      }
    },
  );
});

describe.skipIf(!redisUp)('cache.stats() across resetStats()', () => {
  const { open } = sharedRedisCaches('cm_stats_reset');

  it('a lookup in flight when the counters are reset never makes misses negative or hitRate exceed 1', async () => {
    const writer = await open({ ttlMs: 60_000 });
    await writer.set('straddling', 'v');
    const reader = await open({ ttlMs: 60_000 }); // no L1 copy: its get goes on to L2
    const read = reader.get('straddling'); // the L1 miss is counted now, the L2 hit later
    reader.resetStats();
    expect(await read).toBe('v');
    const stats = reader.stats();
    expect(stats.hits).toEqual({ l1: 0, l2: 1 });
    expect(stats.misses).toBe(0);
    expect(stats.hitRate).toBe(1);
  });
});
