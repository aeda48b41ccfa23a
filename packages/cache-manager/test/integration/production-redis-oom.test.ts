import { delay } from '@noa/core';
import { commandStat, generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { eventually, findMemorySplit } from './helpers.js';
import { total } from './registry-counters.js';

// A production Redis out of memory (maxmemory reached, `noeviction`): every write that may grow
// memory (SET, SADD, RPUSH, a script's first such write) fails with OOM; reads, deletes and
// PUBLISH still work. The cache degrades as its failure modes say (nothing thrown by default,
// set/getOrSet serve their value) and is back on L2 once memory frees. A private server:
// maxmemory must not reach other suites.

const { redis: server, skip } = await startPrivateRedisOrSkip(['--maxmemory-policy', 'noeviction']);

describe.skipIf(skip !== undefined)('the cache on a Redis out of memory', () => {
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
  async function open(prefix: string, registry?: Registry): Promise<Cache> {
    const client = new Redis(url);
    clients.push(client);
    // Not about deadlines: out of memory, Redis answers at once, with an error.
    const cache = new Cache({
      redis: client,
      prefix,
      registry,
      breaker: { halfOpenAfterMs: 200 },
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  const outOfMemory = () => admin.config('SET', 'maxmemory', '1');
  const memoryFreed = () => admin.config('SET', 'maxmemory', '0');

  it('degrades without throwing, serves what set and getOrSet were given, and recovers', async () => {
    const registry = new Registry();
    const writer = await open('oom:', registry);
    const reader = await open('oom:');
    await writer.set('kept', { v: 1 }, { tags: ['t'] });
    expect(await reader.get('kept')).toEqual({ v: 1 });
    await outOfMemory();
    try {
      await writer.set('new', { v: 2 }, { tags: ['t'] });
      expect(await writer.get('new')).toEqual({ v: 2 });
      let runs = 0;
      const computed = await writer.getOrSet('computed', async () => {
        runs += 1;
        return { v: 3 };
      });
      expect([computed, runs]).toEqual([{ v: 3 }, 1]);
      expect(
        await writer.getOrSetMany(['m1', 'm2'], async (keys) => keys.map((key) => ({ v: key }))),
      ).toEqual([{ v: 'm1' }, { v: 'm2' }]);
      await writer.setMany([{ key: 'many', value: { v: 4 } }]);
      // Reads still come from L2; what was there before stays.
      expect(await reader.get('kept')).toEqual({ v: 1 });
      expect(await total(registry, 'noa_cache_manager_degraded_operations_total')).toBeGreaterThan(0);
      expect(writer.health().status).toBe('degraded');
    } finally {
      await memoryFreed();
    }
    // Writes reach L2 again once the breaker's probe finds Redis answering.
    const deadline = Date.now() + 5_000;
    let value: unknown;
    while (Date.now() < deadline) {
      await writer.set('after', { v: 5 });
      value = await reader.get('after');
      if (value !== undefined) break;
      await delay(50);
    }
    expect(value).toEqual({ v: 5 });
    expect(writer.health().status).toBe('up');
    // The writes lost to OOM were announced once Redis answered: no instance keeps them in L1,
    // and a reader sees L2 (which never got them).
    for (const key of ['new', 'computed', 'many']) expect(await reader.get(key)).toBeUndefined();
  });

  it('deletes, deleteByTag and clear still work out of memory (they free memory)', async () => {
    const writer = await open('oom-del:');
    const reader = await open('oom-del:');
    await writer.set('a', 1, { tags: ['t'] });
    await writer.set('b', 2, { tags: ['t'] });
    await writer.set('c', 3);
    await writer.set('d', 4);
    expect(await reader.getMany(['a', 'b', 'c', 'd'])).toEqual([1, 2, 3, 4]);
    await outOfMemory();
    try {
      expect(await writer.deleteByTag('t')).toBe(2);
      expect(await writer.delete('c')).toBe(true);
      // The bus messages: heard when the reader's L1 drops the keys (not assumed within 100 ms).
      expect(await eventually(() => ['a', 'b', 'c'].every((key) => reader.getLocal(key) === undefined))).toBe(
        true,
      );
      expect(await reader.getMany(['a', 'b', 'c', 'd'])).toEqual([undefined, undefined, undefined, 4]);
      expect(await admin.exists('oom-del:v:a', 'oom-del:v:b', 'oom-del:v:c')).toBe(0);
      await writer.clear();
      expect(await eventually(() => reader.getLocal('d') === undefined)).toBe(true);
      expect(await reader.get('d')).toBeUndefined();
      expect(await admin.exists('oom-del:v:d')).toBe(0);
    } finally {
      await memoryFreed();
    }
  });

  it('expire and expireByTag rewrite values: out of memory they are lost, as writes are', async () => {
    const client = new Redis(url);
    clients.push(client);
    const options = {
      redis: client,
      prefix: 'oom-expire:',
      ttlMs: 60_000,
      graceMs: 600_000,
      operationTimeoutMs: generousDeadlineMs,
    };
    const writer = new Cache(options);
    caches.push(writer);
    await writer.ready();
    await writer.set('tagged', 1, { tags: ['t'] });
    await writer.set('plain', 2);
    await outOfMemory();
    try {
      await writer.expireByTag('t'); // nothing thrown (onBackendError: 'degrade')
      await writer.expire('plain');
    } finally {
      await memoryFreed();
    }
    const readerClient = new Redis(url);
    clients.push(readerClient);
    const reader = new Cache({ ...options, redis: readerClient });
    caches.push(reader);
    await reader.ready();
    for (const key of ['tagged', 'plain']) expect(await reader.ttl(key)).toMatchObject({ inGrace: false });
  });

  it('a tagged write whose value landed but whose tag was refused (memory ran out in between) leaves no value deleteByTag misses', async () => {
    const client = new Redis(url);
    clients.push(client);
    // Breaker kept closed: every write is sent; values incompressible in effect (no compression).
    const options = {
      redis: client,
      prefix: 'oom-tag:',
      breaker: { consecutiveFailures: 1_000 },
      compression: { algorithm: 'none' as const },
      operationTimeoutMs: generousDeadlineMs,
    };
    const writer = new Cache(options);
    caches.push(writer);
    await writer.ready();
    const big = 'x'.repeat(200_000);
    const stat = (command: string) => commandStat(admin, command);
    // The SET of a large value adds little memory past its own arguments (already counted while
    // queued), so the margin at which it runs and the SADD behind it is refused is narrow (about
    // 1 KB, often a few hundred bytes): see findMemorySplit.
    const { split, tries } = await findMemorySplit(async (margin, index) => {
      await memoryFreed();
      const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
      const [set, sadd] = [await stat('set'), await stat('sadd')];
      await admin.config('SET', 'maxmemory', String(used + margin));
      await writer.set(`big-${index}`, big, { tags: ['t'] });
      await memoryFreed();
      const [setAfter, saddAfter] = [await stat('set'), await stat('sadd')];
      if (setAfter.calls === set.calls) return 'refused';
      return saddAfter.rejected > sadd.rejected ? 'split' : 'ran'; // 'split': the case under test
    });
    expect(split).toBe(true);
    await writer.deleteByTag('t');
    // Every value written with the tag is gone: none is left in L2 for an instance to read.
    expect(await admin.keys('oom-tag:v:*')).toEqual([]);
    const readerClient = new Redis(url);
    clients.push(readerClient);
    const reader = new Cache({ ...options, redis: readerClient });
    caches.push(reader);
    const written = Array.from({ length: tries }, (_, index) => `big-${index}`);
    expect((await reader.getMany(written)).filter((value) => value !== undefined)).toEqual([]);
  });

  it('with onBackendError throw, a write rejects with BackendUnavailableError naming the OOM', async () => {
    const client = new Redis(url);
    clients.push(client);
    // A deadline past any stall: the error must be Redis's OOM, not a timeout.
    const cache = new Cache({
      redis: client,
      prefix: 'oom-throw:',
      onBackendError: 'throw',
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(cache);
    await cache.ready();
    await outOfMemory();
    try {
      const error = await cache.set('k', 1).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
      expect(String((error as Error).cause)).toMatch(/OOM/);
    } finally {
      await memoryFreed();
    }
  });
});
