import { delay } from '@noa/core';
import { uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { afterAll, describe, it } from 'vitest';
import { Cache, type CacheOptions, type FactoryContext } from '../../src/index.js';
import { observingEvalsha } from './evalsha-observer.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * A run that replaces a value (here: over a value in grace) extends the value's physical expiry
 * as it starts, to `max(lock.leaseMs, hardTimeoutMs) + operationTimeoutMs`, only while the key
 * holds the bytes it read (see refresh-past-expiry.test.ts). A run longer than that extension
 * used to see the value expire under it: its compare-and-set write found nothing and its result
 * was not cached. Now the extension is renewed while the run lasts, and stops when it settles;
 * a delete, tag delete or other write during the run still wins over it.
 *
 * A (the runner) hears no bus (`bus: false`): B's changes reach it only through Redis, so the
 * compare-and-set decides. Bounds on what is not tested here are generous (operation deadlines
 * of a second): the machine may be loaded.
 */
const leaseMs = 500;
const operationTimeoutMs = 1_000;
/** The first extension (no hard timeout): `leaseMs + operationTimeoutMs`. */
const extensionMs = leaseMs + operationTimeoutMs;
/** Longest wait between two extensions of one run, whatever the settings above. */
const renewalPeriodMs = Math.max(leaseMs, operationTimeoutMs);

type Client = Redis | Cluster;

/** `client`, counting the EVALSHA calls whose first key is a value's (`…v:<key>`), by key. */
function countingScripts(client: Client): { client: Client; calls: (key: string) => number } {
  const calls = new Map<string, number>();
  const proxy = observingEvalsha(client, (_sha, first) => {
    const marker = first.lastIndexOf('v:');
    if (marker >= 0) {
      const key = first.slice(marker + 2);
      calls.set(key, (calls.get(key) ?? 0) + 1);
    }
  });
  return { client: proxy, calls: (key) => calls.get(key) ?? 0 };
}

async function until(atMs: number): Promise<void> {
  const left = atMs - performance.now();
  if (left > 0) await delay(left);
}

function describeLongRuns(backend: string, skip: boolean, connect: () => Client, prefix: () => string): void {
  describe.skipIf(skip)(`a run longer than its first extension (${backend})`, () => {
    const caches: Cache[] = [];
    afterAll(async () => {
      await Promise.all(caches.map((cache) => cache.close()));
    });
    async function open(options: CacheOptions = {}, redis: Client = connect()): Promise<Cache> {
      const cache = new Cache({
        redis: redis as Redis,
        prefix: prefix(),
        operationTimeoutMs,
        lock: { enabled: true, leaseMs, timeoutMs: 5_000, pollMs: 100 },
        ...options,
      });
      caches.push(cache);
      await cache.ready();
      return cache;
    }

    /**
     * B writes `key` (in grace from 100 ms to 1.5 s, which the run outlasts), then A's `getOrSet` over it runs a factory
     * held until `holdMs` past its start (then `during` runs, then the factory returns); resolves
     * once A's call (the run, its write and lease release) is done.
     */
    async function runOver(
      key: string,
      {
        holdMs = extensionMs + 700,
        tags = [] as string[],
        during = async (_: { b: Cache }): Promise<unknown> => undefined,
      } = {},
    ) {
      const counted = countingScripts(connect());
      const a = await open({ bus: false }, counted.client);
      const b = await open();
      const c = await open();
      await b.set(key, 'first', { ttlMs: 100, graceMs: 1_400, tags });
      await delay(150);
      const factory = async () => {
        await until(performance.now() + holdMs);
        await during({ b });
        return 'refreshed';
      };
      const served = await a.getOrSet(key, factory, { ttlMs: 60_000, graceMs: 900, tags });
      return { a, b, c, served, extensions: () => counted.calls(key) - 1 };
    }

    it.concurrent('is cached, its extension renewed while it runs', async ({ expect }) => {
      const { c, served, extensions } = await runOver('long');
      expect(served).toBe('refreshed');
      expect(await c.get('long')).toBe('refreshed');
      // The first extension, and at least one renewal.
      expect(extensions()).toBeGreaterThanOrEqual(2);
      // Settled: no renewal is left to come.
      const after = extensions();
      await delay(2 * renewalPeriodMs + 500);
      expect(extensions()).toBe(after);
    });

    it.concurrent('a run shorter than the extension sends only the first one', async ({ expect }) => {
      const { c, served, extensions } = await runOver('short', { holdMs: 0 });
      expect(served).toBe('refreshed');
      expect(await c.get('short')).toBe('refreshed');
      await delay(2 * renewalPeriodMs + 500);
      expect(extensions()).toBe(1);
    });

    it.concurrent('a run that fails stops renewing as it settles', async ({ expect }) => {
      const counted = countingScripts(connect());
      const a = await open({ bus: false }, counted.client);
      const b = await open();
      await b.set('failed', 'first', { ttlMs: 100, graceMs: 1_400 });
      await delay(150);
      const failing = async () => {
        await delay(extensionMs + 700);
        throw new Error('source down');
      };
      // Past its grace by then: nothing to serve, the call fails.
      await expect(a.getOrSet('failed', failing, { ttlMs: 60_000 })).rejects.toThrow();
      // No write: every script call on the key was an extension.
      const after = counted.calls('failed');
      expect(after).toBeGreaterThanOrEqual(2);
      await delay(2 * renewalPeriodMs + 500);
      expect(counted.calls('failed')).toBe(after);
    });

    it.concurrent('a run still going when the cache closes stops renewing', async ({ expect }) => {
      const counted = countingScripts(connect());
      const a = await open({ bus: false }, counted.client);
      const b = await open();
      await b.set('hung', 'first', { ttlMs: 100, graceMs: 1_400 });
      await delay(150);
      // The run never settles (but for its signal). Its caller awaits it with no timeout: a run
      // nobody awaits would be given up past the lease (hung-runs.test.ts), renewals and all.
      const hung = ({ signal }: FactoryContext<string>) =>
        new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      const waiting = a.getOrSet('hung', hung, { ttlMs: 60_000 }).catch((error: unknown) => error);
      await delay(extensionMs + 700);
      expect(counted.calls('hung')).toBeGreaterThanOrEqual(2);
      // Not waiting for the run: close() aborts it.
      await a.close({ waitMs: 0 });
      // Its grace over by now: the abort's ClosedError, as cause.
      expect(await waiting).toMatchObject({ code: 'NOA_CACHE_FACTORY_FAILED' });
      const after = counted.calls('hung');
      await delay(2 * renewalPeriodMs + 500);
      expect(counted.calls('hung')).toBe(after);
    });

    it.concurrent('a delete on another instance past the first extension wins', async ({ expect }) => {
      const { a, c, served } = await runOver('deleted', { during: ({ b }) => b.delete('deleted') });
      expect(served).toBe('refreshed');
      expect(await c.get('deleted')).toBeUndefined();
      expect(a.getLocal('deleted')).toBeUndefined();
    });

    it.concurrent('another instance’s write past the first extension wins', async ({ expect }) => {
      const { c } = await runOver('written', {
        during: ({ b }) => b.set('written', 'B', { ttlMs: 60_000 }),
      });
      expect(await c.get('written')).toBe('B');
    });

    it.concurrent('a tag delete on another instance past the first extension wins', async ({ expect }) => {
      // The value's tag set would have expired with the first extension: renewed with it.
      const { c } = await runOver('tag-deleted', {
        tags: ['t-long'],
        during: ({ b }) => b.deleteByTag('t-long'),
      });
      expect(await c.get('tag-deleted')).toBeUndefined();
    });

    it.concurrent('a getOrSetMany run longer than the extension is cached', async ({ expect }) => {
      const counted = countingScripts(connect());
      const a = await open({ bus: false }, counted.client);
      const b = await open();
      const c = await open();
      const keys = ['many-1', 'many-2'];
      await b.setMany(
        keys.map((key) => ({ key, value: 'first', ttlMs: 100, graceMs: 1_400, tags: ['t-many'] })),
      );
      await delay(150);
      const factoryMany = async (asked: readonly string[]) => {
        await until(performance.now() + extensionMs + 700);
        return asked.map(() => 'refreshed');
      };
      expect(
        await a.getOrSetMany(keys, factoryMany, { ttlMs: 60_000, graceMs: 900, tags: ['t-many'] }),
      ).toEqual(['refreshed', 'refreshed']);
      expect(await c.getMany(keys)).toEqual(['refreshed', 'refreshed']);
      // The first extension and at least one renewal of each, then nothing once settled.
      const after = keys.map((key) => counted.calls(key) - 1);
      for (const count of after) expect(count).toBeGreaterThanOrEqual(2);
      await delay(2 * renewalPeriodMs + 500);
      expect(keys.map((key) => counted.calls(key) - 1)).toEqual(after);
    });
  });
}

const singlePrefix = testPrefix('long-run-extension');
const singleClients: Redis[] = [];
afterAll(async () => {
  if (redisUp) await dropPrefix(singlePrefix);
  for (const client of singleClients) client.disconnect();
});
describeLongRuns(
  'Redis',
  !redisUp,
  () => {
    const client = new Redis(redisUrl);
    singleClients.push(client);
    return client;
  },
  () => singlePrefix,
);

const { installed, client: cluster } = usePrivateCluster('long factory runs on a Redis Cluster');
const clusterPrefix = `${uniqueName('cm_long_run_cluster')}:`;
describeLongRuns(
  'Redis Cluster',
  !installed,
  () => cluster(),
  () => clusterPrefix,
);
