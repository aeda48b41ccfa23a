import { once } from 'node:events';
import { defaultConsecutiveFailures, delay } from '@noa/core';
import { recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { busSubscribed, setKeptInL1 } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/** Calls per command since the server's stats were last reset. */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

/**
 * Issue 9, the cache's side: a Redis that stalls after healthy traffic. The default breaker
 * opened on its failure ratio over 5 s only, and each half-open trial was a user call waiting out
 * `operationTimeoutMs` on the stalled Redis.
 */
describe.skipIf(started.skip !== undefined)(
  'a Redis that stalls after healthy traffic (default breaker)',
  () => {
    const clients: Redis[] = [];
    const caches: Cache[] = [];
    afterAll(async () => {
      for (const cache of caches) await cache.close();
      for (const client of clients) client.disconnect();
      await started.redis?.stop();
    });

    it('opens after a run of timed-out reads, probes by PING, serves L1 meanwhile, and closes on its own', async () => {
      const server = started.redis!;
      const admin = new Redis(server.url);
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      for (const each of [admin, client]) {
        each.on('error', () => {});
        clients.push(each);
      }
      await Promise.all([once(admin, 'ready'), once(client, 'ready')]);
      const logger = recordingLogger();
      const cache = new Cache({
        redis: client,
        prefix: 'probe:',
        logger,
        operationTimeoutMs: 25,
        breaker: { halfOpenAfterMs: 200 },
      });
      caches.push(cache);
      await cache.ready();
      await busSubscribed(logger);
      await setKeptInL1(cache, logger, 'warm', 'kept in L1');
      // Healthy traffic: reads of absent keys, each an L2 read that Redis answers.
      for (let index = 0; index < 300; index += 1) await cache.get(`absent:${index}`);
      expect(cache.stats().l2).toBe('closed');
      const timeoutsBefore = cache.stats().l2Timeouts;
      await admin.config('RESETSTAT');

      await server.pause(3_000);
      const states: string[] = [];
      for (let index = 0; index < 400; index += 1) {
        // L1 keeps serving; absent keys are misses answered without Redis once it is open.
        expect(await cache.get('warm')).toBe('kept in L1');
        expect(await cache.get(`absent:${index}`)).toBeUndefined();
        states.push(cache.stats().l2);
        await delay(2);
      }
      const timedOut = cache.stats().l2Timeouts - timeoutsBefore;
      expect(timedOut).toBeGreaterThan(0);
      expect(timedOut).toBeLessThanOrEqual(defaultConsecutiveFailures);
      expect(states).toContain('half-open');
      expect(cache.stats().degraded.breakerOpen).toBeGreaterThan(300);

      // Once the pause ends Redis runs what it held: the reads of the run only, and the probes.
      await admin.ping();
      const calls = await commandCalls(admin);
      expect((calls.get ?? 0) + (calls.mget ?? 0)).toBe(timedOut);
      expect(calls.ping ?? 0).toBeGreaterThanOrEqual(2);

      let state = cache.stats().l2;
      for (let attempt = 0; attempt < 200 && state !== 'closed'; attempt += 1) {
        await cache.get('after');
        state = cache.stats().l2;
        if (state !== 'closed') await delay(20);
      }
      expect(state).toBe('closed');
      expect(logger.messages('info')).toContain('redis circuit breaker closed');
      expect(cache.stats().l2Timeouts - timeoutsBefore).toBe(timedOut);
    });
  },
);
