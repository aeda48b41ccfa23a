import { delay } from '@noa/core';
import { generousDeadlineMs, recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';

// A production Redis that evicts (`allkeys-lru`, maxmemory small enough that the cache's own
// keys go too): the shared structures list, tag sets and leases may be evicted while values stay.
// A miss or a recomputation is fine; a wrong value is not. A private server: maxmemory and the
// junk that fills it must not reach other suites.

const { redis: server, skip } = await startPrivateRedisOrSkip(['--maxmemory-policy', 'allkeys-lru']);

describe.skipIf(skip !== undefined)('the cache on a Redis that evicts its keys', () => {
  const url = server?.url ?? 'redis://127.0.0.1:1';
  const admin = new Redis(url, { lazyConnect: true });
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server?.stop();
  });
  async function open(prefix: string, options: CacheOptions = {}): Promise<Cache> {
    const client = new Redis(url);
    clients.push(client);
    // A 1-entry L1: reads go to Redis and decode there.
    const cache = new Cache({
      redis: client,
      prefix,
      l1: { maxEntries: 1 },
      operationTimeoutMs: generousDeadlineMs,
      ...options,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  /**
   * Fills Redis with junk under a 1 MB headroom until `gone` has been evicted, then stops evicting
   * and drops the junk. With `allkeys-lru`, `keep` is touched meanwhile so that LRU prefers the
   * other keys (it may still take some of them). With `volatile-lru` only keys with an expiry go
   * (the junk has one): values written without `ttlMs` and the structures list, which has none,
   * all stay, while tag sets and leases (which have one) are evicted.
   */
  async function evict(
    gone: string,
    keep: readonly string[],
    policy: 'allkeys-lru' | 'volatile-lru' = 'allkeys-lru',
  ): Promise<void> {
    // Redis's LRU clock ticks once a second: keys written in the same second as the junk tie
    // with it, so `gone` must be older than that to be preferred.
    await delay(1_100);
    const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 1_000_000), 'maxmemory-policy', policy);
    const junk = 'j'.repeat(10_000);
    try {
      for (let index = 0; index < 5_000 && (await admin.exists(gone)) === 1; index += 1) {
        if (keep.length > 0) await admin.touch(...keep);
        await admin.set(`junk:${index}`, junk, 'EX', 3_600);
      }
    } finally {
      await admin.config('SET', 'maxmemory', '0', 'maxmemory-policy', 'allkeys-lru');
    }
    expect(await admin.exists(gone)).toBe(0);
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', 'junk:*', 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await admin.unlink(...keys);
    } while (cursor !== '0');
  }
  const listReaches = async (listKey: string, length: number) => {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (await admin.llen(listKey)) < length) await delay(10);
    return admin.lrange(listKey, 0, -1);
  };

  it('a structures list evicted and recreated by another instance never decodes a value into another shape', async () => {
    const prefix = 'evict-struct:';
    const listKey = `${prefix}__structures`;
    const alpha = (n: number) => ({ alpha: n, beta: String(n) });
    const xray = (n: number) => ({ xray: n, yank: String(n) });
    const first = await open(prefix);
    for (let n = 1; n <= 3; n += 1) await first.set(`a${n}`, alpha(n));
    expect((await listReaches(listKey, 2))[1]).toBe(JSON.stringify(['alpha', 'beta']));
    await first.set('a4', alpha(4));
    expect((await admin.getBuffer(`${prefix}v:a4`))![5]).toBe(1); // uses the shared structure
    // More values of that shape, kept too: LRU is approximate (sampled), and in one CI run it
    // evicted all four values before the list.
    const more = Array.from({ length: 16 }, (_, index) => index + 1);
    for (const n of more) await first.set(`k${n}`, alpha(n));
    const written = [...[1, 2, 3, 4].map((n) => `${prefix}v:a${n}`), ...more.map((n) => `${prefix}v:k${n}`)];
    await evict(listKey, written);
    const surviving = await admin.exists(...written);
    expect(surviving).toBeGreaterThan(0); // values written with the evicted list are still there
    // Another instance starts a new list: its first structure takes the id "alpha/beta" had.
    const second = await open(prefix);
    for (let n = 1; n <= 3; n += 1) await second.set(`x${n}`, xray(n));
    expect((await listReaches(listKey, 2))[1]).toBe(JSON.stringify(['xray', 'yank']));
    await second.set('x4', xray(4));
    expect((await admin.getBuffer(`${prefix}v:x4`))![5]).toBe(1);
    // The first instance (still holding the old list) writes again with its shape.
    await first.set('a5', alpha(5));
    const third = await open(prefix);
    for (const cache of [first, second, third]) {
      for (let n = 1; n <= 5; n += 1) expect([undefined, alpha(n)]).toContainEqual(await cache.get(`a${n}`));
      for (const n of more) expect([undefined, alpha(n)]).toContainEqual(await cache.get(`k${n}`));
      for (let n = 1; n <= 4; n += 1) expect([undefined, xray(n)]).toContainEqual(await cache.get(`x${n}`));
    }
    // The new list's values decode everywhere, once an instance has re-read the list.
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (await first.get('x4')) === undefined) await delay(50);
    expect(await first.get('x4')).toEqual(xray(4));
    expect(await third.get('x4')).toEqual(xray(4));
  });

  it('an evicted tag set leaves its values out of deleteByTag: a cache that writes tags warns of a policy that evicts', async () => {
    const prefix = 'evict-tag:';
    const logger = recordingLogger();
    const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 50_000_000)); // room: nothing evicted yet
    let writer: Cache;
    try {
      writer = await open(prefix, { logger });
      await writer.set('plain', { v: 0 });
      await delay(200); // the policy has been read
      expect(logger.messages('warn').filter((warning) => warning.includes('maxmemory'))).toEqual([]); // no tags yet
      await writer.set('tagged', { v: 1 }, { tags: ['t'] });
      await writer.set('tagged-2', { v: 2 }, { tags: ['t'] });
      const named = logger.messages('warn').filter((warning) => warning.includes('maxmemory'));
      expect(named).toHaveLength(1);
      expect(named[0]).toContain('allkeys-lru');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    // What it warns of: the tag set evicted, the values kept.
    await evict(`${prefix}__tag:t`, [], 'volatile-lru');
    expect(await admin.exists(`${prefix}v:tagged`, `${prefix}v:tagged-2`)).toBe(2);
    await writer.deleteByTag('t');
    const reader = await open(prefix);
    expect(await reader.getMany(['tagged', 'tagged-2'])).toEqual([{ v: 1 }, { v: 2 }]);
  });

  it('no warning for tags when Redis does not evict (noeviction, or no maxmemory)', async () => {
    const logger = recordingLogger();
    const unlimited = await open('evict-none:', { logger });
    await admin.config('SET', 'maxmemory', '100mb', 'maxmemory-policy', 'noeviction');
    try {
      const noeviction = await open('evict-none:', { logger });
      await delay(200);
      await unlimited.set('a', 1, { tags: ['t'] });
      await noeviction.set('b', 2, { tags: ['t'] });
      await delay(100);
    } finally {
      await admin.config('SET', 'maxmemory', '0', 'maxmemory-policy', 'allkeys-lru');
    }
    expect(logger.messages('warn').filter((warning) => warning.includes('maxmemory'))).toEqual([]);
  });

  it('an evicted lease costs a second factory run, never a lost or mixed value, and its holder does not free the next one', async () => {
    const prefix = 'evict-lease:';
    const leaseKey = `${prefix}__lease:k`;
    const first = await open(prefix);
    const second = await open(prefix);
    let finishFirst!: () => void;
    const firstRunning = first.getOrSet('k', async () => {
      await new Promise<void>((resolve) => {
        finishFirst = resolve;
      });
      return { by: 'first' };
    });
    while ((await admin.exists(leaseKey)) === 0) await delay(5);
    await evict(leaseKey, [], 'volatile-lru');
    let finishSecond!: () => void;
    const secondRunning = second.getOrSet('k', async () => {
      await new Promise<void>((resolve) => {
        finishSecond = resolve;
      });
      return { by: 'second' };
    });
    while ((await admin.exists(leaseKey)) === 0) await delay(5); // the second run's own lease
    const secondLease = await admin.get(leaseKey);
    finishFirst();
    expect(await firstRunning).toEqual({ by: 'first' });
    expect(await admin.get(leaseKey)).toBe(secondLease); // the first holder's release left it
    finishSecond();
    expect(await secondRunning).toEqual({ by: 'second' });
    const third = await open(prefix);
    // The first run's write checks its lease, which the second run holds now: refused, and the
    // second run's value (read from the source later) is the one cached, whole.
    expect(await third.get('k')).toEqual({ by: 'second' });
  });
});
