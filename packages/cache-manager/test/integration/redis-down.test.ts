import { delay } from '@noa/core';
import { startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('the Redis-down test');

/** Long, so that a call that waited for the client to be ready stands out from one that did not. */
const OPERATION_TIMEOUT_MS = 5_000;
/** Generous (2 noisy cores): a call that degrades at once is far below it, one that waited is above. */
const PROMPT_BOUND_MS = OPERATION_TIMEOUT_MS / 2;

/** Resolves on the `count`-th `event` of `client` from now. */
function nth(client: Redis, event: string, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = () => {
      seen += 1;
      if (seen < count) return;
      client.off(event, listener);
      resolve();
    };
    client.on(event, listener);
  });
}

/** `work`'s value and how long it took (ms). */
async function timed<T>(work: Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await work;
  return [value, performance.now() - started];
}

/**
 * Redis stopped for longer than a reconnect: once ioredis has tried to reconnect and failed,
 * the client is known to be down, and waiting for it to be ready would cost every call its
 * whole deadline until the breaker opens (and every half-open probe after). Calls made then
 * degrade at once; a call made in the moment before (the connection just dropped, the first
 * attempt not yet made) is held until that attempt fails, not until its deadline.
 */
// Concurrent: each test has a redis-server of its own, and spends its time waiting on it.
describe
  .skipIf(!hasRedisServer)
  .concurrent('Redis down: calls degrade at once once a reconnect failed', () => {
    it('fails calls at once, before the breaker opens and as half-open probes, then recovers', async () => {
      const server = await startPrivateRedis();
      const redis = new Redis(server.url, { retryStrategy: () => 100, maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      const cache = new Cache({
        redis,
        prefix: 'down:',
        bus: false,
        operationTimeoutMs: OPERATION_TIMEOUT_MS,
        breaker: { consecutiveFailures: 10, halfOpenAfterMs: 300 },
      });
      try {
        await cache.ready();
        await cache.set('warm', 'kept in L1');
        const failedAttempt = nth(redis, 'reconnecting', 2); // the drop, then a failed attempt
        await server.kill();
        await failedAttempt;
        // Every call made before the breaker opens (each sends one or more Redis calls) degrades at once.
        const calls = [
          () => cache.get('absent'),
          () => cache.set('written-while-down', 1),
          () => cache.getOrSet('computed-while-down', () => 'computed'),
          () => cache.delete('deleted-while-down'),
        ];
        let callsWhileClosed = 0;
        while (cache.stats().l2 === 'closed') {
          const [, ms] = await timed(calls[callsWhileClosed % calls.length]!());
          expect(ms, `a call took ${ms.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
          callsWhileClosed += 1;
        }
        expect(callsWhileClosed).toBeGreaterThanOrEqual(calls.length);
        expect(await cache.get('warm')).toBe('kept in L1');
        // The breaker lets a probe through every 300 ms: the probe degrades at once too.
        await delay(350);
        const [value, probeMs] = await timed(cache.getOrSet('probed', () => 'computed'));
        expect(value).toBe('computed');
        expect(probeMs, `the probe took ${probeMs.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
        // Recovery: ioredis reconnects on its own, the next probe succeeds, writes land again.
        await server.restart();
        const deadline = Date.now() + 15_000;
        let recovered = false;
        while (Date.now() < deadline && !recovered) {
          await cache.set('after', 'recovered');
          recovered =
            cache.stats().l2 === 'closed' && (await redis.get('down:v:after').catch(() => null)) !== null;
          if (!recovered) await delay(100);
        }
        expect(recovered).toBe(true);
      } finally {
        await cache.close();
        redis.disconnect();
        await server.stop();
      }
    }, 60_000);

    it('holds a call made as the connection dropped until the first reconnect attempt fails, not its deadline', async () => {
      const server = await startPrivateRedis();
      // The first attempt comes 300 ms after the drop: a call made in between is held meanwhile.
      const redis = new Redis(server.url, { retryStrategy: () => 300, maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      const cache = new Cache({
        redis,
        prefix: 'down:',
        bus: false,
        operationTimeoutMs: OPERATION_TIMEOUT_MS,
        onBackendError: 'throw',
      });
      try {
        await cache.ready();
        const dropped = nth(redis, 'reconnecting', 1);
        await server.kill();
        await dropped;
        const [error, ms] = await timed(
          cache.set('written-as-it-dropped', 1).catch((caught: unknown) => caught),
        );
        expect(error).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
        expect(ms, `the call took ${ms.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
      } finally {
        await cache.close();
        redis.disconnect();
        await server.stop();
      }
    }, 60_000);

    it('a cache created on a client that has been failing for a while fails its first calls at once', async () => {
      const server = await startPrivateRedis();
      // A long retry delay after a failed attempt: a fresh cache that waited for the client's next
      // attempt stands out. The first attempt after the drop comes at once: waiting 3 s for it
      // only delayed the test.
      const redis = new Redis(server.url, {
        retryStrategy: (attempt) => (attempt === 1 ? 50 : 3_000),
        maxRetriesPerRequest: 1,
      });
      redis.on('error', () => {});
      let fresh: Cache | undefined;
      try {
        // No cache on the client yet: none watched its connection fail.
        await nth(redis, 'ready', 1);
        const failedAttempt = nth(redis, 'reconnecting', 2); // the drop, then a failed attempt
        await server.kill();
        await failedAttempt;
        // Between two attempts: the client is known to be down, though this cache never saw it fail.
        fresh = new Cache({
          redis,
          prefix: 'down:',
          bus: false,
          sharedStructures: false,
          operationTimeoutMs: OPERATION_TIMEOUT_MS,
          onBackendError: 'throw',
        });
        const [error, ms] = await timed(
          fresh.set('written-while-down', 1).catch((caught: unknown) => caught),
        );
        expect(error).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
        expect(ms, `the first call took ${ms.toFixed(0)} ms`).toBeLessThan(1_000);
        const [read, readMs] = await timed(fresh.get('absent').catch((caught: unknown) => caught));
        expect(read).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
        expect(readMs, `the second call took ${readMs.toFixed(0)} ms`).toBeLessThan(1_000);
        // Recovery: once the client is ready again, the fresh cache's calls go through.
        await server.restart();
        await nth(redis, 'ready', 1);
        await fresh.set('after', 'recovered');
        expect(await redis.get('down:v:after')).not.toBeNull();
      } finally {
        await fresh?.close();
        redis.disconnect();
        await server.stop();
      }
    }, 60_000);

    it('a lazyConnect client not connected yet: a write made while Redis is down fails at once and never lands later', async () => {
      const server = await startPrivateRedis();
      await server.kill();
      // ioredis's default maxRetriesPerRequest (20) keeps a queued command for 20 attempts: 6 s here.
      let retryDelayMs = 300;
      const redis = new Redis(server.url, { lazyConnect: true, retryStrategy: () => retryDelayMs });
      redis.on('error', () => {});
      // No shared structures and no bus: the write is the cache's first command on the client.
      const cache = new Cache({
        redis,
        prefix: 'down:',
        bus: false,
        sharedStructures: false,
        operationTimeoutMs: OPERATION_TIMEOUT_MS,
        onBackendError: 'throw',
      });
      const other = new Redis(server.url, { lazyConnect: true });
      try {
        expect(redis.status).toBe('wait');
        const [error, ms] = await timed(cache.set('lost', 'older').catch((caught: unknown) => caught));
        expect(error).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
        expect(ms, `the write took ${ms.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
        // Redis back: another instance writes the key; this client reconnects, and whatever it
        // had queued is sent before its PING is answered.
        // The client must reconnect after the other's write for a queued write to land over it:
        // its attempts are spaced out from here, and its `ready` is awaited from before the
        // restart (awaited after, it could come first and the wait never end: seen under load).
        retryDelayMs = 2_000;
        const readyAgain = nth(redis, 'ready', 1);
        await server.restart();
        await other.set('down:v:lost', 'newer');
        await readyAgain;
        await redis.ping();
        expect(await other.get('down:v:lost')).toBe('newer');
      } finally {
        await cache.close();
        redis.disconnect();
        other.disconnect();
        await server.stop();
      }
    }, 60_000);
  });
