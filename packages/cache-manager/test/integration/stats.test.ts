import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
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
