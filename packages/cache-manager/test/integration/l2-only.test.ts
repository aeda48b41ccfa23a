import { ManualClock, TimeoutError } from '@noa/core';
import { startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { BackendUnavailableError, Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, redisUp, redisUrl, testPrefix } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('the L2-only Redis-down test');
const redis = new Redis(redisUrl, { lazyConnect: !redisUp });
const prefix = testPrefix('cm_l2only');
const caches: Cache[] = [];
const make = (options: CacheOptions = {}) => {
  const cache = new Cache({ redis, prefix, l1: false, ...options });
  caches.push(cache);
  return cache;
};

afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  if (redisUp) await dropPrefix(prefix);
  redis.disconnect();
});

describe.skipIf(!redisUp)('l1: false (L2-only) on Redis', () => {
  it('two instances with the bus off always read the other’s latest write, delete, tag delete and expire', async () => {
    const a = make({ bus: false, graceMs: 60_000 });
    const b = make({ bus: false, graceMs: 60_000 });
    for (let round = 0; round < 20; round += 1) {
      const [writer, reader] = round % 2 === 0 ? [a, b] : [b, a];
      await writer.set('current', round, { tags: ['rounds'] });
      // No message: the reader has no copy a lost message could leave stale.
      expect(await reader.get('current')).toBe(round);
      expect(await reader.getOrSet('current', () => 'not run')).toBe(round);
      expect(await reader.getMany(['current', 'absent'])).toEqual([round, undefined]);
    }
    await a.delete('current');
    expect(await b.get('current')).toBeUndefined();
    await b.set('current', 'tagged', { tags: ['rounds'] });
    expect(await a.get('current')).toBe('tagged');
    await b.deleteByTag('rounds');
    expect(await a.get('current')).toBeUndefined();
    await a.set('current', 'expired later');
    expect(await b.get('current')).toBe('expired later');
    await b.expire('current');
    expect(await a.get('current')).toBeUndefined();
    // Still in grace in L2, for a failing factory on the other instance.
    expect(await a.getOrSet('current', () => Promise.reject(new Error('source down')))).toBe('expired later');
  });

  it('the control: with L1 and the bus off, the other instance keeps serving its stale copy', async () => {
    // What L2-only gives: the same sequence as above with L1 reads the first value again.
    const a = make({ bus: false, l1: {} });
    const b = make({ bus: false, l1: {} });
    await a.set('control', 1);
    expect(await b.get('control')).toBe(1);
    await a.set('control', 2);
    expect(await b.get('control')).toBe(1);
  });

  it('keeps nothing in process: stats, health and the metrics report L1 as empty and absent', async () => {
    const registry = new Registry();
    const cache = make({ registry, name: 'l2only' });
    await cache.ready();
    await cache.set('kept', { n: 1 });
    expect(await cache.get('kept')).toEqual({ n: 1 });
    expect(await cache.get('kept')).toEqual({ n: 1 });
    expect(await cache.get('absent')).toBeUndefined();
    expect(cache.getLocal('kept')).toBeUndefined();
    const stats = cache.stats();
    expect(stats.l1).toEqual({ policy: 'none', entries: 0, bytes: 0 });
    // Every lookup passes an L1 that holds nothing: all hits are L2 hits.
    expect(stats.hits).toEqual({ l1: 0, l2: 2 });
    expect(stats.misses).toBe(1);
    expect(cache.health().details).toMatchObject({ l1: 'none', l1Entries: 0, l2: 'closed' });
    // No L1 size series at all; requests_total counts each lookup as an L1 miss, as stats does.
    const metric = (name: string) =>
      registry.getSingleMetric(`noa_cache_manager_${name}`)?.get() as Promise<{
        values: { value: number; labels: Record<string, string | number> }[];
      }>;
    const l1Series = async (name: string) =>
      (await metric(name)).values.filter(
        (value) => value.labels.cache === 'l2only' && value.labels.tier === 'l1',
      );
    expect(await l1Series('entries')).toEqual([]);
    expect(await l1Series('stored_bytes')).toEqual([]);
    const l1Requests = await l1Series('requests_total');
    expect(l1Requests.map((value) => [value.labels.result, value.value])).toEqual([['miss', 3]]);
  });

  it('decodes each read on its own: l1.mode does not apply, no two reads share an object', async () => {
    const cache = make();
    await cache.set('object', { list: [1] });
    const first = await cache.get<{ list: number[] }>('object');
    first!.list.push(2);
    expect(Object.isFrozen(first)).toBe(false);
    expect(await cache.get('object')).toEqual({ list: [1] });
    const read = await cache.getOrSet('object', () => ({ list: [] as number[] }));
    expect(read).not.toBe(first);
    expect(read).toEqual({ list: [1] });
  });

  it('getOrSet runs the factory once in process for concurrent misses, and once more after a delete', async () => {
    const cache = make();
    const factory = vi.fn(async () => 'computed');
    const results = await Promise.all(Array.from({ length: 10 }, () => cache.getOrSet('single', factory)));
    expect(results).toEqual(Array(10).fill('computed'));
    expect(factory).toHaveBeenCalledTimes(1);
    expect(await cache.getOrSet('single', factory)).toBe('computed');
    expect(factory).toHaveBeenCalledTimes(1);
    await cache.delete('single');
    expect(await cache.getOrSet('single', factory)).toBe('computed');
    expect(factory).toHaveBeenCalledTimes(2);
  });

  it('a getOrSet after its own set reads that write: it does not join the load in flight, whose value in grace it replaced', async () => {
    // L2-only writes did not tell the fill guard (no L1 to fill), so the load in flight looked
    // unchanged: the later call joined it and got the value in grace the set had replaced,
    // served past the first caller's soft timeout (an L1 cache hits its own write in L1).
    const clock = new ManualClock(Date.now());
    const cache = make({ clock, ttlMs: 1_000, graceMs: 600_000 });
    await cache.set('own-write', 'old');
    clock.advance(2_000);
    let started = 0;
    const slow = () => {
      started += 1;
      return new Promise<string>((resolve) => setTimeout(() => resolve('older'), 600));
    };
    const first = cache.getOrSet('own-write', slow, { softTimeoutMs: 300 });
    await vi.waitFor(() => expect(started).toBe(1));
    await cache.set('own-write', 'mine');
    expect(await cache.getOrSet('own-write', slow, { softTimeoutMs: 300 })).toBe('mine');
    expect(await first).toBe('old');
    expect(started).toBe(1);
  });

  it('refreshes ahead on an L2 hit (it has no other kind): the caller gets the current value, the next the refreshed one', async () => {
    const clock = new ManualClock(Date.now());
    const cache = make({ clock, ttlMs: 10_000, refreshThresholdMs: 2_000 });
    let version = 0;
    const factory = vi.fn(async () => {
      version += 1;
      return version;
    });
    expect(await cache.getOrSet('ahead', factory)).toBe(1);
    clock.advance(5_000);
    expect(await cache.getOrSet('ahead', factory)).toBe(1);
    expect(factory).toHaveBeenCalledTimes(1);
    clock.advance(4_000); // 1 s of freshness left, under the threshold
    expect(await cache.getOrSet('ahead', factory)).toBe(1);
    await vi.waitFor(async () => expect(await cache.get('ahead')).toBe(2));
    expect(factory).toHaveBeenCalledTimes(2);
    // The refreshed value has its full TTL again: no refresh on the next hit.
    expect(await cache.getOrSet('ahead', factory)).toBe(2);
    expect(factory).toHaveBeenCalledTimes(2);
  });

  it('while another instance holds the refresh lease, hits of a due key cost one lease call per lock.pollMs or value, not one each', async () => {
    const clock = new ManualClock(Date.now());
    const options = { clock, ttlMs: 10_000, refreshThresholdMs: 2_000 };
    // This instance's lease calls (SET … NX), counted as sent; `inFlight` settles before each next hit.
    let leaseCalls = 0;
    let inFlight = 0;
    const client = new Redis(redisUrl);
    const counted = new Proxy(client, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        if (property !== 'set') return value.bind(target);
        return (...args: unknown[]) => {
          const reply = (value as (...all: unknown[]) => Promise<unknown>).apply(target, args);
          if (args.includes('NX') && String(args[0]).endsWith('busy-lease')) {
            leaseCalls += 1;
            inFlight += 1;
            void reply.finally(() => {
              inFlight -= 1;
            });
          }
          return reply;
        };
      },
    });
    const here = make({ ...options, redis: counted });
    const holder = make(options);
    let release: (value: string) => void = () => {};
    const started = vi.fn();
    try {
      await here.set('busy-lease', 'v1');
      clock.advance(9_000); // 1 s of freshness left, under the threshold: every hit finds it due
      // The other instance's early refresh takes the lease and hangs until released.
      expect(
        await holder.getOrSet('busy-lease', () => {
          started();
          return new Promise<string>((resolve) => {
            release = resolve;
          });
        }),
      ).toBe('v1');
      await vi.waitFor(() => expect(started).toHaveBeenCalledTimes(1));
      const hit = async () => {
        expect(await here.getOrSet('busy-lease', () => 'not run here')).toBe('v1');
        await vi.waitFor(() => expect(inFlight).toBe(0));
      };
      for (let round = 0; round < 10; round += 1) await hit();
      // Each hit found the lease busy with a call of its own: 10. Remembered: 1.
      expect(leaseCalls).toBe(1);
      // Past lock.pollMs (100 ms by default), the lease is asked for again, once.
      clock.advance(150);
      for (let round = 0; round < 5; round += 1) await hit();
      expect(leaseCalls).toBe(2);
      // Another value (still due) is another question, whatever the window.
      await holder.set('busy-lease', 'v2', { ttlMs: 1_000 });
      for (let round = 0; round < 5; round += 1)
        expect(await here.getOrSet('busy-lease', () => 'not run here')).toBe('v2');
      await vi.waitFor(() => expect(inFlight).toBe(0));
      expect(leaseCalls).toBe(3);
    } finally {
      release('refreshed');
      await here.close();
      client.disconnect();
    }
  });

  it('saveHotKeys of an L2-only cache leaves the hot set instances with L1 saved under the prefix', async () => {
    const ownPrefix = `${prefix}hot:`;
    const withL1 = make({ prefix: ownPrefix, l1: {} });
    await withL1.set('hot:a', 1);
    await withL1.saveHotKeys(10);
    const saved = await redis.lrange(`${ownPrefix}__hot`, 0, -1);
    expect(saved).toEqual(['hot:a']);
    // It has no L1 keys to save: saving none would delete the list.
    await make({ prefix: ownPrefix }).saveHotKeys(10);
    expect(await redis.lrange(`${ownPrefix}__hot`, 0, -1)).toEqual(saved);
  });

  it('warm writes L2 only: another instance reads the keys, the warming one holds nothing', async () => {
    const cache = make();
    const report = await cache.warm(['w:1', 'w:2'], (key) => `loaded ${key}`);
    expect(report).toMatchObject({ loaded: 2, failed: 0 });
    expect(cache.stats().l1.entries).toBe(0);
    expect(await make().getMany(['w:1', 'w:2'])).toEqual(['loaded w:1', 'loaded w:2']);
    // Already in L2: skipped.
    expect(await cache.warm(['w:1'], () => 'not loaded')).toMatchObject({ skipped: 1, loaded: 0 });
  });
});

describe.skipIf(!hasRedisServer)(
  'l1: false with Redis frozen: reads end at the deadline, nothing to fall back on',
  () => {
    it('degrade: get is undefined and getOrSet runs the factory; throw: BackendUnavailableError with the timeout as cause', async () => {
      const server = await startPrivateRedis();
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      const options = {
        redis: client,
        prefix: 'l2only-down:',
        l1: false,
        bus: false,
        operationTimeoutMs: 300,
      } as const;
      const degrading = new Cache(options);
      const throwing = new Cache({ ...options, onBackendError: 'throw' });
      try {
        await degrading.set('k', 'in Redis');
        expect(await throwing.get('k')).toBe('in Redis');
        server.freeze();
        // No L1 copy to serve: the value is out of reach until Redis answers.
        expect(await degrading.get('k')).toBeUndefined();
        expect(await degrading.getOrSet('computed', () => 'from the source')).toBe('from the source');
        const error = await throwing.get('k').catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(BackendUnavailableError);
        expect((error as BackendUnavailableError).cause).toBeInstanceOf(TimeoutError);
        server.resume();
        await vi.waitFor(async () => expect(await degrading.get('k')).toBe('in Redis'), { timeout: 10_000 });
      } finally {
        server.resume();
        await Promise.all([degrading.close(), throwing.close()]);
        client.disconnect();
        await server.stop();
      }
    });
  },
);
