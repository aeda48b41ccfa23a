import { delay } from '@noa/core';
import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const started = await startPrivateRedisOrSkip();

/** Long, so that one deadline stands apart from two on a loaded machine. */
const OPERATION_TIMEOUT_MS = 1_000;
/** Generous (2 noisy cores): one deadline plus slack, well under two. */
const CALL_BOUND_MS = 1_600;
/**
 * The longest Redis stays frozen: longer than any call below, so a call that waited for Redis
 * twice would wait two deadlines. Redis is resumed as soon as the call returned, not after this.
 */
const FREEZE_MS = 4_000;

/** `work`'s value and how long it took (ms). */
async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const begun = performance.now();
  const value = await work();
  return [value, performance.now() - begun];
}

/**
 * A call waits for Redis one deadline at most while Redis is frozen (SIGSTOP): a
 * `getOrSet` whose L2 read timed out does not then wait for its L2 write, nor one whose write
 * timed out for its lease release; a `setMany` or `getOrSetMany` of several chunks stops waiting
 * after the first that failed. On a Redis that answers, `writeMode: 'await'` still means the
 * values are in Redis when the call returns. The breaker is kept closed (many failures to open),
 * so every Redis call is sent and waits its deadline, as in the moments before a breaker opens.
 */
describe.skipIf(started.skip !== undefined)('calls on a frozen Redis wait one deadline at most', () => {
  let server: PrivateRedis;
  let redis: Redis;
  let admin: Redis;
  let cache: Cache;

  beforeAll(async () => {
    server = started.redis!;
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    admin = new Redis(server.url);
    cache = new Cache({
      redis,
      prefix: 'frozen:',
      bus: false,
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 100 },
    });
    await cache.ready();
  });

  afterAll(async () => {
    clearTimeout(thaw);
    server?.resume();
    await cache?.close();
    redis?.disconnect();
    admin?.disconnect();
    await server?.stop();
  });

  let thaw: NodeJS.Timeout | undefined;

  /**
   * Freezes Redis (SIGSTOP: connections stay open, nothing is answered) for {@link FREEZE_MS}
   * at most. A `CLIENT PAUSE` of that length cannot be ended early (`CLIENT UNPAUSE` waits for
   * it), so each case waited for all of it after its call had returned.
   */
  function freeze(): void {
    server.freeze();
    thaw = setTimeout(() => server.resume(), FREEZE_MS);
  }

  /** Runs `work` while Redis is frozen, then resumes it (see {@link recover}). */
  async function whileFrozen<T>(work: () => Promise<T>): Promise<T> {
    freeze();
    try {
      return await work();
    } finally {
      await recover();
    }
  }

  /** Resumes Redis and waits for the cache's Redis calls to succeed again. */
  async function recover(): Promise<void> {
    clearTimeout(thaw);
    server.resume();
    const healthy = Date.now() + 10_000;
    while (Date.now() < healthy && (await cache.get('probe:healthy')) === undefined) {
      await cache.set('probe:healthy', 1);
      await delay(50);
    }
  }

  it('on a Redis that answers, getOrSet, setMany and getOrSetMany return once their values are in Redis', async () => {
    expect(await cache.getOrSet('healthy:one', () => 'computed')).toBe('computed');
    expect(await admin.exists('frozen:v:healthy:one')).toBe(1);
    const many = Array.from({ length: 2_500 }, (_, index) => `healthy:many:${index}`);
    await cache.setMany(many.map((key) => ({ key, value: key })));
    expect(await admin.exists(...many.map((key) => `frozen:v:${key}`))).toBe(many.length);
    const batch = ['healthy:batch:1', 'healthy:batch:2'];
    await cache.getOrSetMany(batch, (keys) => keys.map((key) => `value of ${key}`));
    expect(await admin.exists(...batch.map((key) => `frozen:v:${key}`))).toBe(batch.length);
  });

  it('getOrSet of a cold key: the L2 read times out, and the L2 write is not waited for', async () => {
    const before = cache.stats().l2Timeouts;
    const [value, ms] = await whileFrozen(async () => {
      const call = await timed(() => cache.getOrSet('cold:one', () => 'computed'));
      // The write goes on in the background and times out there (Redis still frozen).
      const deadline = Date.now() + 2 * OPERATION_TIMEOUT_MS;
      while (Date.now() < deadline && cache.stats().l2Timeouts < before + 2) await delay(20);
      return call;
    });
    expect(value).toBe('computed');
    expect(ms, `getOrSet took ${ms.toFixed(0)} ms`).toBeLessThan(CALL_BOUND_MS);
    // The write's timeout was counted as the read's was; L1 has the value.
    expect(cache.stats().l2Timeouts).toBeGreaterThanOrEqual(before + 2);
    expect(cache.getLocal('cold:one')).toBe('computed');
  });

  it('getOrSet whose write times out (Redis frozen during the factory) does not then wait for its lease release', async () => {
    let computedAt = 0;
    const value = await cache.getOrSet('cold:frozen-in-factory', async () => {
      freeze();
      computedAt = performance.now();
      return 'computed';
    });
    const ms = performance.now() - computedAt;
    await recover();
    expect(value).toBe('computed');
    expect(ms, `getOrSet took ${ms.toFixed(0)} ms after its factory`).toBeLessThan(CALL_BOUND_MS);
  });

  it('setMany of several L2 chunks stops waiting after the first that failed', async () => {
    const items = Array.from({ length: 2_500 }, (_, index) => ({ key: `cold:set:${index}`, value: index }));
    const [, ms] = await whileFrozen(() => timed(() => cache.setMany(items)));
    expect(ms, `setMany took ${ms.toFixed(0)} ms`).toBeLessThan(CALL_BOUND_MS);
    expect(cache.getLocal('cold:set:2499')).toBe(2_499);
  });

  it('getOrSetMany of cold keys: the L2 read times out, and the L2 writes are not waited for', async () => {
    const keys = ['cold:batch:1', 'cold:batch:2', 'cold:batch:3'];
    const [values, ms] = await whileFrozen(() =>
      timed(() => cache.getOrSetMany(keys, (missing) => missing.map((key) => `value of ${key}`))),
    );
    expect(values).toEqual(keys.map((key) => `value of ${key}`));
    expect(ms, `getOrSetMany took ${ms.toFixed(0)} ms`).toBeLessThan(CALL_BOUND_MS);
  });
});
