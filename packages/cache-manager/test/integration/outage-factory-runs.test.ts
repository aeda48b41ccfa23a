import { delay, type Logger } from '@noa/core';
import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, FactoryTimeoutError } from '../../src/index.js';
import { resyncWatcher } from './helpers.js';

const started = await startPrivateRedisOrSkip();

/**
 * A full Redis outage: L2 and the bus are both out of reach, and ioredis retries the bus
 * connection, each failed attempt closing it again. Runs are suspect from a close on (see
 * `FactoryRun.suspect`), and L2 cannot be checked: the value must still be cached in L1, or
 * every call of a key runs the factory for as long as the outage lasts.
 */
describe.skipIf(started.skip !== undefined)('factory runs during a full Redis outage', () => {
  let server: PrivateRedis;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  beforeAll(() => {
    server = started.redis!;
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  /** A cache whose connections retry every 20 ms, so the bus closes again during any slow run. */
  async function open(prefix: string, logger?: Logger): Promise<Cache> {
    const client = new Redis(server.url, { retryStrategy: () => 20, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix,
      ttlMs: 60_000,
      operationTimeoutMs: 100,
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 },
      ...(logger ? { logger } : {}),
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  /**
   * Restarts the server and waits for the bus's resync after it: a reconnect past `before` (the
   * count taken first). Case 2 restarts the server once before: on a loaded machine its
   * `delay(50)` lasted long enough for the bus to reconnect then, and a wait on "a resync came"
   * returned at once, before the resync that drops the value (`expected 'v-a' to be undefined`,
   * 2 runs in 12 beside two busy loops).
   */
  async function restartAndResync(resyncs: () => number): Promise<void> {
    const before = resyncs();
    await server.restart();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && resyncs() <= before) await delay(20);
    expect(resyncs()).toBeGreaterThan(before);
  }

  it('repeated getOrSet calls of one key run a slow factory once per ttl, not once per call', async () => {
    const watcher = resyncWatcher();
    const cache = await open('outage-runs:', watcher.logger);
    await server.kill();
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(120);
      return 'value';
    };
    for (let call = 0; call < 8; call++) expect(await cache.getOrSet('k', factory)).toBe('value');
    expect(runs).toBe(1);
    // Cached in L1 only: the resync drops it, and L2 never got it.
    await restartAndResync(watcher.resyncs);
    expect(cache.getLocal('k')).toBeUndefined();
    const admin = new Redis(server.url);
    admin.on('error', () => {});
    clients.push(admin);
    expect(await admin.keys('outage-runs:*k*')).toEqual([]);
    await server.kill();
  });

  it('repeated getOrSetMany calls run a slow factory once per key, not once per call', async () => {
    const watcher = resyncWatcher();
    const cache = await open('outage-runs-many:', watcher.logger);
    await server.restart();
    await delay(50);
    await server.kill();
    const runs = new Map<string, number>();
    const factory = async (keys: readonly string[]) => {
      for (const key of keys) runs.set(key, (runs.get(key) ?? 0) + 1);
      await delay(120);
      return keys.map((key) => `v-${key}`);
    };
    for (let call = 0; call < 6; call++)
      expect(await cache.getOrSetMany(['a', 'b'], factory)).toEqual(['v-a', 'v-b']);
    expect(Object.fromEntries(runs)).toEqual({ a: 1, b: 1 });
    await restartAndResync(watcher.resyncs);
    expect(cache.getLocal('a')).toBeUndefined();
    await server.kill();
  });

  it('calls after a hard timeout join the run still going instead of starting one per call', async () => {
    const cache = await open('outage-join:');
    await server.restart();
    await delay(50);
    await server.kill();
    let runs = 0;
    let release: (value: string) => void = () => {};
    const released = new Promise<string>((resolve) => {
      release = resolve;
    });
    const slowSource = () => {
      runs += 1;
      return released;
    };
    for (let call = 0; call < 6; call++) {
      await expect(cache.getOrSet('k', slowSource, { hardTimeoutMs: 50 })).rejects.toThrow(
        FactoryTimeoutError,
      );
    }
    expect(runs).toBe(1);
    release('late');
  });
});
