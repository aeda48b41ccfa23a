import { delay } from '@noa/core';
import { type PrivateRedis, recordingLogger, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, Cache } from '../../src/index.js';
import { busSubscribed, setKeptInL1 } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('a private Redis');

const OPERATION_TIMEOUT_MS = 150;
// Generous bound (2 noisy cores): the deadline plus slack for timers and GC.
// Redis stays frozen (SIGSTOP) until the calls below returned, so a call that waited for Redis
// would exceed the bound; it is resumed right after (a 2 s CLIENT PAUSE cannot end early, and
// the tests waited it out).
const CALL_BOUND_MS = OPERATION_TIMEOUT_MS + 800;

describe.skipIf(!hasRedisServer)('Redis frozen, then killed, then back', () => {
  let server: PrivateRedis;
  let redis: Redis;
  let cache: Cache;
  let strict: Cache;
  const registry = new Registry();
  const logger = recordingLogger();

  beforeAll(async () => {
    server = await startPrivateRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    const common = {
      redis,
      prefix: 'fail:',
      ttlMs: 60_000,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 },
    };
    cache = new Cache({ ...common, registry, logger });
    strict = new Cache({ ...common, onBackendError: 'throw' });
    await Promise.all([cache.ready(), strict.ready()]);
    // A bus subscribed past the 150 ms that ready() waits would drop the L1 warmed below.
    await busSubscribed(logger);
  });

  afterAll(async () => {
    server?.resume();
    await Promise.all([cache?.close(), strict?.close()]);
    redis?.disconnect();
    await server?.stop();
  });

  /** Runs `work` while Redis is frozen, then resumes it. */
  async function frozen<T>(work: () => Promise<T>): Promise<T> {
    server.freeze();
    try {
      return await work();
    } finally {
      server.resume();
    }
  }

  /** Runs a mixed workload for `ms`, asserting every call returns within the bound. */
  async function workload(ms: number, label: string): Promise<{ calls: number; l1Served: number }> {
    const until = Date.now() + ms;
    let calls = 0;
    let l1Served = 0;
    let round = 0;
    while (Date.now() < until) {
      round += 1;
      const started = performance.now();
      const [warm, fresh] = await Promise.all([
        cache.get<string>('warm:1'),
        cache.getOrSet(`${label}:${round}`, () => `computed ${round}`),
        cache.set(`${label}:set:${round}`, round),
        cache.delete(`${label}:gone:${round}`),
      ]);
      const elapsed = performance.now() - started;
      expect(elapsed, `${label} round ${round} took ${elapsed.toFixed(0)} ms`).toBeLessThan(CALL_BOUND_MS);
      expect(fresh).toBe(`computed ${round}`);
      if (warm === 'kept in L1') l1Served += 1;
      calls += 4;
    }
    return { calls, l1Served };
  }

  it('serves from L1 without exceptions while Redis is frozen, within the deadline', async () => {
    await setKeptInL1(cache, logger, 'warm:1', 'kept in L1');
    // Warnings of the outage only (a write above past its deadline on a loaded machine warns too).
    const warnedBefore = logger.messages('warn').length;
    const { calls, l1Served } = await frozen(() => workload(1_200, 'paused'));
    expect(calls).toBeGreaterThan(8);
    expect(l1Served).toBeGreaterThan(2);
    expect(cache.stats().l2).not.toBe('closed');
    const metrics = await registry.metrics();
    expect(metrics).toMatch(
      /noa_cache_manager_degraded_operations_total\{cache="cache",operation="[a-z_]+",kind="(timeout|circuit_open)"\} [1-9]/,
    );
    // An outage is logged, but not once per failed call: at most one failure warning a second.
    expect(logger.messages('warn').slice(warnedBefore)).toContain('redis circuit breaker open');
    const failures = logger
      .messages('warn')
      .slice(warnedBefore)
      .filter((message) => message === 'redis operation failed; serving from L1');
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.length).toBeLessThanOrEqual(3);
  });

  it('throws BackendUnavailableError when configured to, within the deadline', async () => {
    const started = performance.now();
    const error = await frozen(() => strict.get('anything').catch((caught: unknown) => caught));
    expect(performance.now() - started).toBeLessThan(CALL_BOUND_MS);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect(error).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
  });

  it('keeps serving when Redis is killed mid-run, and recovers on its own when it returns', async () => {
    // Killed while calls are in flight: their connection drops under them.
    const running = workload(1_500, 'killed');
    await delay(300);
    await server.kill();
    const { l1Served } = await running;
    expect(l1Served).toBeGreaterThan(2);
    // No leases while Redis is down, but concurrent misses in this process still share one run.
    let runs = 0;
    const started = performance.now();
    const values = await Promise.all(
      Array.from({ length: 20 }, () =>
        cache.getOrSet('down:single', async () => {
          runs += 1;
          await delay(20);
          return 'computed once';
        }),
      ),
    );
    expect(performance.now() - started).toBeLessThan(CALL_BOUND_MS);
    expect(values.every((value) => value === 'computed once')).toBe(true);
    expect(runs).toBe(1);
    await server.restart();
    // Recovery: the breaker half-opens, a probe succeeds, writes reach Redis again.
    const deadline = Date.now() + 15_000;
    let recovered = false;
    while (Date.now() < deadline && !recovered) {
      await cache.set('after', 'recovered');
      const written = (await redis.getBuffer('fail:v:after').catch(() => null)) !== null;
      // A loaded machine may time out a call or two right after the restart, re-opening the
      // breaker briefly: recovery means it settles closed with writes reaching Redis.
      recovered = written && cache.stats().l2 === 'closed';
      if (!recovered) await delay(200);
    }
    expect(recovered).toBe(true);
    // Invalidations sent while the bus was down are lost, so once it is back the cache drops
    // its L1 rather than serve what it may have missed (warm:1 was served from L1 until now).
    // Waited for by the bus's own line: L1 can also go earlier by the root clear of lost
    // invalidations ('too many invalidations lost'), sent through the main connection, which may
    // reconnect before the subscriber (ioredis 6 backs off with jitter), and the bus's resync was
    // then still to come.
    const resynced = 'invalidation bus reconnected; dropping L1 (invalidations may have been missed)';
    while (Date.now() < deadline && !logger.messages('info').includes(resynced)) await delay(50);
    expect(logger.messages('info')).toContain(resynced);
    expect(cache.getLocal('warm:1')).toBeUndefined();
    const other = new Cache({ redis, prefix: 'fail:' });
    expect(await other.get('after')).toBe('recovered');
    await other.close();
  });
});
