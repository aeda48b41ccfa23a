import { type PrivateRedis, recordingLogger, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, Cache } from '../../src/index.js';
import { busSubscribed } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';
import { total } from './registry-counters.js';

const hasRedisServer = redisServerInstalled('a private Redis');

const OPERATION_TIMEOUT_MS = 150;
/** Far above what a few deadlines take: a call still pending then waits for Redis itself. */
const SETTLE_CAP_MS = 4_000;

type Outcome =
  | { settled: false }
  | { settled: true; ok: true; value: unknown }
  | { settled: true; ok: false; error: unknown };

/** How `call` settles while Redis stays frozen: not at all within the cap means it waits for Redis. */
async function outcome(call: () => Promise<unknown>): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ settled: false }), SETTLE_CAP_MS);
  });
  try {
    return await Promise.race([
      call().then(
        (value): Outcome => ({ settled: true, ok: true, value }),
        (error: unknown): Outcome => ({ settled: true, ok: false, error }),
      ),
      cap,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every public method that may reach Redis, by name. */
function calls(cache: Cache, round: string): Record<string, () => Promise<unknown>> {
  return {
    get: () => cache.get(`${round}:get`),
    getMany: () => cache.getMany([`${round}:m1`, `${round}:m2`]),
    ttl: () => cache.ttl(`${round}:ttl`),
    has: () => cache.has(`${round}:has`),
    set: () => cache.set(`${round}:set`, 1, { tags: ['t'] }),
    setMany: () =>
      cache.setMany([
        { key: `${round}:sm1`, value: 1 },
        { key: `${round}:sm2`, value: 2 },
      ]),
    delete: () => cache.delete(`${round}:delete`),
    pull: () => cache.pull(`${round}:pull`),
    deleteMany: () => cache.deleteMany([`${round}:dm1`, `${round}:dm2`]),
    deleteByTag: () => cache.deleteByTag(`${round}:tag`),
    expire: () => cache.expire(`${round}:expire`),
    expireMany: () => cache.expireMany([`${round}:em1`, `${round}:em2`]),
    expireByTag: () => cache.expireByTag(`${round}:etag`),
    clear: () => cache.clear(),
    namespaceClear: () => cache.namespace(`${round}-ns`).clear(),
    getOrSet: () => cache.getOrSet(`${round}:gos`, () => 'computed'),
    getOrSetMany: () =>
      cache.getOrSetMany([`${round}:gosm1`, `${round}:gosm2`], (keys) => keys.map(() => 'computed')),
    wrap: () =>
      cache.wrap(
        (n: number) => `computed ${n}`,
        (n) => `${round}:wrap:${n}`,
      )(1),
    warm: () => cache.warm([`${round}:w1`, `${round}:w2`], () => 'computed'),
    saveHotKeys: () => cache.saveHotKeys(10),
    checkHealth: () => cache.checkHealth({ timeoutMs: 300 }),
  };
}

describe.skipIf(!hasRedisServer)('every public method on a frozen Redis', () => {
  let server: PrivateRedis;
  let redis: Redis;
  let degrade: Cache;
  let strict: Cache;
  const logger = recordingLogger();
  const registry = new Registry();
  const degraded = () => total(registry, 'noa_cache_manager_degraded_operations_total');

  beforeAll(async () => {
    server = await startPrivateRedis();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    const common = {
      redis,
      prefix: 'every:',
      ttlMs: 60_000,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      hotKeys: 10,
      // Kept closed: every call meets the frozen server, none is skipped by the breaker.
      breaker: { consecutiveFailures: 1_000_000, halfOpenAfterMs: 300 },
    };
    degrade = new Cache({ ...common, logger, registry });
    strict = new Cache({ ...common, onBackendError: 'throw' });
    await Promise.all([degrade.ready(), strict.ready()]);
    await busSubscribed(logger);
  });

  afterAll(async () => {
    server?.resume();
    await Promise.all([degrade?.close(), strict?.close()]);
    redis?.disconnect();
    await server?.stop();
  });

  it("'degrade': every method settles while Redis stays frozen, none rejects, each is counted as degraded (checkHealth reports it)", async () => {
    server.freeze();
    const results: Record<string, string> = {};
    try {
      for (const [name, call] of Object.entries(calls(degrade, 'deg'))) {
        const before = await degraded();
        const result = await outcome(call);
        // checkHealth's PING is no cache operation (nor a breaker input): it reports instead.
        const counted =
          name === 'checkHealth'
            ? result.settled && result.ok && (result.value as { status: string }).status === 'degraded'
              ? 'ok'
              : 'ok, not reported as degraded'
            : (await degraded()) > before
              ? 'ok'
              : 'ok, not counted as degraded';
        results[name] = !result.settled
          ? 'pending'
          : result.ok
            ? counted
            : `rejected ${String(result.error)}`;
      }
    } finally {
      server.resume();
    }
    expect(Object.entries(results).filter(([, r]) => r !== 'ok')).toEqual([]);
  });

  it("'throw': every method settles while Redis stays frozen, rejecting with BackendUnavailableError", async () => {
    server.freeze();
    const results: Record<string, string> = {};
    try {
      for (const [name, call] of Object.entries(calls(strict, 'str'))) {
        // Never reject for Redis, by contract: checkHealth reports, warm counts what failed.
        if (name === 'checkHealth') continue;
        if (name === 'warm') {
          const result = await outcome(call);
          expect(result).toMatchObject({
            settled: true,
            ok: true,
            value: { total: 2, loaded: 0, failed: 2 },
          });
          continue;
        }
        const result = await outcome(call);
        results[name] = !result.settled
          ? 'pending'
          : result.ok
            ? `resolved ${JSON.stringify(result.value)}`
            : result.error instanceof BackendUnavailableError
              ? 'backend-unavailable'
              : `rejected ${String(result.error)}`;
      }
    } finally {
      server.resume();
    }
    expect(Object.entries(results).filter(([, r]) => r !== 'backend-unavailable')).toEqual([]);
  });
});
