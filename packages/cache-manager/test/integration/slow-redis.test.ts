import { delay } from '@noa/core';
import { type PrivateRedis, recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { busSubscribed, setKeptInL1 } from './helpers.js';
import { HoldingProxy } from './holding-proxy.js';

const started = await startPrivateRedisOrSkip();

const OPERATION_TIMEOUT_MS = 150;
/** Generous (2 noisy cores): a miss costs two deadlines (L2 read, then L2 write) plus slack. */
const CALL_BOUND_MS = 2 * OPERATION_TIMEOUT_MS + 800;

/** The value of one sample line (`name{labels} value`), 0 when the series does not exist yet. */
async function sample(registry: Registry, series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/**
 * Redis slow rather than paused or down: a TCP proxy delays every byte sent to it by 1 s, so the
 * connection stays up and every command is sent, and answered, too late.
 */
describe.skipIf(started.skip !== undefined)('Redis slow behind a delaying proxy', () => {
  let server: PrivateRedis;
  let proxy: HoldingProxy;
  let redis: Redis;
  let cache: Cache;
  const registry = new Registry();
  const logger = recordingLogger();

  beforeAll(async () => {
    server = started.redis!;
    proxy = await HoldingProxy.start(server.port);
    redis = new Redis(proxy.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    cache = new Cache({
      redis,
      prefix: 'slow:',
      registry,
      logger,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 },
    });
    await cache.ready();
    // A bus subscribed past the 150 ms that ready() waits would drop the L1 warmed below.
    await busSubscribed(logger);
  });

  afterAll(async () => {
    await cache?.close();
    redis?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('answers every call within the deadline from L1, piles up no commands, and recovers once Redis is fast', async () => {
    await setKeptInL1(cache, logger, 'warm', 'kept in L1');
    proxy.delayMs = 1_000;
    let mostAwaitingReplies = 0;
    let rounds = 0;
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      rounds += 1;
      const begun = performance.now();
      const [warm] = await Promise.all([
        cache.get('warm'),
        cache.getOrSet(`computed:${rounds}`, () => rounds),
        cache.set(`large:${rounds}`, 'x'.repeat(5_000)),
      ]);
      expect(performance.now() - begun).toBeLessThan(CALL_BOUND_MS);
      expect(warm).toBe('kept in L1');
      mostAwaitingReplies = Math.max(mostAwaitingReplies, redis.commandQueue.length);
    }
    expect(cache.stats().degraded.breakerOpen).toBeGreaterThan(0);
    // The open breaker sends nothing: only the calls before it opened and its probes wait for
    // replies, not one per call of the thousands made meanwhile.
    expect(rounds).toBeGreaterThan(100);
    expect(mostAwaitingReplies).toBeLessThan(50);

    // The delayed bytes still arrive first (the proxy keeps a connection's bytes in order).
    proxy.delayMs = 0;
    const recovered = Date.now() + 10_000;
    while (Date.now() < recovered && cache.stats().l2 !== 'closed') {
      await cache.get('probe');
      await delay(100);
    }
    expect(cache.stats().l2).toBe('closed');
    await cache.set('after', 'written');
    const reader = new Cache({ redis, prefix: 'slow:', bus: false });
    expect(await reader.get('after')).toBe('written');
    await reader.close();
  });

  it('times the calls that ran out of time too: the latency histogram shows the hang', async () => {
    // The call below reaches Redis only with the breaker closed (a loaded machine can leave a
    // call of the previous test past its deadline).
    const closed = Date.now() + 10_000;
    while (Date.now() < closed && cache.stats().l2 !== 'closed') {
      await cache.get('probe');
      await delay(100);
    }
    expect(cache.stats().l2).toBe('closed');
    const series = 'noa_cache_manager_operation_duration_seconds';
    const before = await sample(registry, `${series}_count{cache="cache",tier="l2",operation="get"}`);
    const slowBefore =
      before - (await sample(registry, `${series}_bucket{le="0.1",cache="cache",tier="l2",operation="get"}`));
    proxy.delayMs = 1_000;
    await cache.get('absent:1');
    proxy.delayMs = 0;
    expect(await sample(registry, `${series}_count{cache="cache",tier="l2",operation="get"}`)).toBe(
      before + 1,
    );
    const slow =
      (await sample(registry, `${series}_count{cache="cache",tier="l2",operation="get"}`)) -
      (await sample(registry, `${series}_bucket{le="0.1",cache="cache",tier="l2",operation="get"}`));
    expect(slow).toBe(slowBefore + 1);
  });
});
