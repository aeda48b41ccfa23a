import { delay } from '@noa/core';
import { generousDeadlineMs, startPrivateRedis } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { HoldingProxy } from './holding-proxy.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('the shared structures restart test');

const page = (seed: number) => ({
  page: seed,
  items: Array.from({ length: 5 }, (_, index) => ({
    id: seed * 10 + index,
    name: `user ${index}`,
    address: { city: 'Lima', zip: String(index) },
  })),
});

describe.skipIf(!redisUp)('shared msgpack structures on Redis', () => {
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  const prefixes: string[] = [];
  async function cacheOn(prefix: string, options: CacheOptions = {}): Promise<Cache> {
    // bus off and a 1-entry L1: reads in these tests go to Redis and decode there.
    const cache = new Cache({
      redis,
      prefix,
      bus: false,
      l1: { maxEntries: 1 },
      operationTimeoutMs: generousDeadlineMs,
      ...options,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  function newPrefix(label: string): string {
    const prefix = testPrefix(label);
    prefixes.push(prefix);
    return prefix;
  }
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      for (const prefix of prefixes) await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('writes repeated shapes once in Redis; other instances and old-format readers decode them', async () => {
    const prefix = newPrefix('cm_struct');
    const writer = await cacheOn(prefix);
    await writer.set('p0', page(0));
    await writer.set('p1', page(1)); // second sighting of the shapes: proposed to Redis
    await writer.close(); // waits for the proposal to be appended
    const list = await redis!.lrange(`${prefix}__structures`, 0, -1);
    expect(list.slice(1).map((json) => JSON.parse(json))).toEqual(
      expect.arrayContaining([
        ['page', 'items'],
        ['id', 'name', 'address'],
        ['city', 'zip'],
      ]),
    );

    const second = await cacheOn(prefix);
    await second.set('p2', page(2));
    const shared = (await redis!.getBuffer(`${prefix}v:p2`))!;
    const inline = (await redis!.getBuffer(`${prefix}v:p0`))!;
    expect(shared[0]! >> 4).toBe(4); // format 4: structures by id and fingerprint
    expect(inline[0]! >> 4).toBe(4); // the list existed (empty) when p0 was written
    expect(shared.length).toBeLessThan(inline.length);

    // A fresh instance, one that never writes shared structures and a JSON one all read both.
    for (const options of [{}, { sharedStructures: false }, { serializer: 'json' as const }]) {
      const reader = await cacheOn(prefix, options);
      expect(await reader.getMany(['p0', 'p1', 'p2'])).toEqual([page(0), page(1), page(2)]);
    }
  });

  it('keeps reading values of the first release (format 1) and writes format 1 when turned off', async () => {
    const prefix = newPrefix('cm_struct_v1');
    const old = await cacheOn(prefix, { sharedStructures: false });
    await old.set('a', page(1));
    await old.set('b', page(2));
    const bytes = (await redis!.getBuffer(`${prefix}v:a`))!;
    expect(bytes[0]! >> 4).toBe(1);
    expect(await redis!.exists(`${prefix}__structures`)).toBe(0);
    const current = await cacheOn(prefix);
    expect(await current.getMany(['a', 'b'])).toEqual([page(1), page(2)]);
  });

  it('treats values as misses, never as wrong values, when the structures list is lost', async () => {
    const prefix = newPrefix('cm_struct_lost');
    const writer = await cacheOn(prefix);
    for (let index = 0; index < 3; index += 1) await writer.set(`k${index}`, page(index));
    await writer.close();
    const before = (await redis!.getBuffer(`${prefix}v:k2`))!;
    expect(before[5]).toBeGreaterThan(0); // k2 uses shared structures
    // Evicted or flushed: a new instance starts a new epoch.
    await redis!.del(`${prefix}__structures`);
    const reader = await cacheOn(prefix);
    expect(await reader.get('k2')).toBeUndefined();
    let runs = 0;
    const value = await reader.getOrSet('k2', () => {
      runs += 1;
      return page(9);
    });
    expect([value, runs]).toEqual([page(9), 1]);
    expect(await (await cacheOn(prefix)).get('k2')).toEqual(page(9));
  });

  it('never decodes a value into another shape after the list came back as an older copy', async () => {
    const prefix = newPrefix('cm_struct_restore');
    const listKey = `${prefix}__structures`;
    /** Waits until the list holds `length` entries (the epoch included); proposals are appended shortly after a write. */
    const listReaches = async (length: number) => {
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline && (await redis!.llen(listKey)) < length) await delay(10);
      return redis!.lrange(listKey, 0, -1);
    };
    // The first instance on a connection of its own, so that the test can close it.
    const own = new Redis(redisUrl);
    const first = new Cache({
      redis: own,
      prefix,
      bus: false,
      l1: { maxEntries: 1 },
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(first);
    await first.ready();
    const snapshot = await redis!.lrange(listKey, 0, -1); // [epoch]: what a restart restores
    await first.set('a1', { alpha: 1, beta: '1' });
    await first.set('a2', { alpha: 2, beta: '2' }); // second sighting: ["alpha","beta"] appended
    expect((await listReaches(2))[1]).toBe(JSON.stringify(['alpha', 'beta']));
    // Redis restarts from a snapshot older than the append; every connection closes.
    await redis!
      .multi()
      .del(listKey)
      .rpush(listKey, ...snapshot)
      .exec();
    own.disconnect(true);
    await new Promise((resolve) => own.once('ready', resolve));
    const second = await cacheOn(prefix);
    await second.set('x1', { xray: 1, yank: '1' });
    await second.set('x2', { xray: 2, yank: '2' }); // appended at the position "alpha/beta" had
    expect((await listReaches(2))[1]).toBe(JSON.stringify(['xray', 'yank']));
    await second.set('x3', { xray: 3, yank: '3' });
    expect((await redis!.getBuffer(`${prefix}v:x3`))![5]).toBe(1); // uses the shared structure
    expect(await first.get('x3')).toEqual({ xray: 3, yank: '3' });
    await first.set('a3', { alpha: 3, beta: '3' });
    expect(await (await cacheOn(prefix)).get('a3')).toEqual({ alpha: 3, beta: '3' });
    await first.close();
    own.disconnect();
  });

  it('a read-only instance whose connection never closed follows the list, never decoding the old shape', async () => {
    const prefix = newPrefix('cm_struct_reader');
    const listKey = `${prefix}__structures`;
    const listReaches = async (length: number) => {
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline && (await redis!.llen(listKey)) < length) await delay(10);
      return redis!.lrange(listKey, 0, -1);
    };
    const first = await cacheOn(prefix);
    const snapshot = await redis!.lrange(listKey, 0, -1);
    await first.set('a1', { alpha: 1, beta: '1' });
    await first.set('a2', { alpha: 2, beta: '2' });
    expect((await listReaches(2))[1]).toBe(JSON.stringify(['alpha', 'beta']));
    await first.set('a3', { alpha: 3, beta: '3' });
    // The reader learns ["alpha","beta"] at id 0 by reading, then only ever reads.
    const reader = await cacheOn(prefix);
    expect(await reader.get('a3')).toEqual({ alpha: 3, beta: '3' });
    // The list comes back older (as on a Cluster: the reader's connection stays open) and
    // another instance appends another shape at id 0.
    await redis!
      .multi()
      .del(listKey)
      .rpush(listKey, ...snapshot)
      .exec();
    const second = await cacheOn(prefix);
    await second.set('x1', { xray: 1, yank: '1' });
    await second.set('x2', { xray: 2, yank: '2' });
    expect((await listReaches(2))[1]).toBe(JSON.stringify(['xray', 'yank']));
    await second.set('x3', { xray: 3, yank: '3' });
    expect((await redis!.getBuffer(`${prefix}v:x3`))![5]).toBe(1);
    // Until it has re-read the list (at most once a second) the value is a miss; never the old shape.
    const seen: unknown[] = [];
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const value = await reader.get('x3');
      seen.push(value);
      if (value !== undefined) break;
      await delay(50);
    }
    expect(seen.at(-1)).toEqual({ xray: 3, yank: '3' });
    expect(seen.filter((value) => value !== undefined)).toEqual([{ xray: 3, yank: '3' }]);
    // a3 was written with ["alpha","beta"] at id 0: a miss now, not { xray: 3, yank: '3' }.
    expect(await reader.get('a3')).toBeUndefined();
  });

  it('a root clear leaves no key behind; a namespace clear keeps the list other namespaces decode with', async () => {
    const prefix = newPrefix('cm_struct_clear');
    const clearer = await cacheOn(prefix, { bus: true });
    // The writer keeps its list loaded (and trusted) across the clear, and its values in L1.
    const writer = await cacheOn(prefix, { bus: true, l1: { maxEntries: 100 } });
    await writer.set('p0', page(0));
    await writer.set('p1', page(1)); // second sighting: the shapes are appended
    while ((await redis!.llen(`${prefix}__structures`)) < 2) await delay(5);
    await writer.set('p2', page(2));
    expect((await redis!.getBuffer(`${prefix}v:p2`))![5]).toBeGreaterThan(0); // uses shared structures

    // A namespace's clear leaves the list: the root's values still need it.
    await clearer.namespace('orders').set('o1', page(3));
    await clearer.namespace('orders').clear();
    expect(await redis!.exists(`${prefix}__structures`)).toBe(1);
    expect(await (await cacheOn(prefix)).get('p2')).toEqual(page(2));

    // The root clear: nothing under the prefix is left in Redis.
    const heard = new Promise<void>((resolve) =>
      writer.onInvalidation((message) => message.t === 'clear' && resolve()),
    );
    await clearer.clear();
    await heard;
    expect(await redis!.keys(`${prefix}*`)).toEqual([]);

    // The writer, told by the bus, does not go on writing with the list the clear removed: a
    // new instance (which starts a new list) reads what it writes next.
    await writer.set('p4', page(4));
    const reader = await cacheOn(prefix);
    expect(await reader.get('p4')).toEqual(page(4));
    expect(await reader.get('p2')).toBeUndefined();
  });

  it('decodes another instance’s value at once when its own first read of the list timed out', async () => {
    const prefix = newPrefix('cm_struct_late');
    const writer = await cacheOn(prefix);
    await writer.set('p0', page(0));
    await writer.set('p1', page(1)); // second sighting: the shapes are appended
    await writer.close(); // waits for the append
    await (await cacheOn(prefix)).set('p2', page(2));
    expect((await redis!.getBuffer(`${prefix}v:p2`))![5]).toBeGreaterThan(0); // uses shared structures
    // The reader's first read of the list is held back by a proxy past its deadline.
    const proxy = await HoldingProxy.start(Number(new URL(redisUrl).port));
    const client = new Redis(proxy.url);
    client.on('error', () => {});
    let reader: Cache | undefined;
    try {
      proxy.holdMatching = new RegExp(`${prefix}__structures`);
      // Long enough for a loaded machine's reads; the held read outlasts it all the same.
      reader = await cacheOn(prefix, { redis: client, operationTimeoutMs: 2_000 });
      expect(reader.stats().l2).toBe('closed');
      proxy.release();
      // Redis answers again, and holds the structures p2 needs: a hit, not a miss until a re-read.
      expect(await reader.get('p2')).toEqual(page(2));
      expect(await reader.getMany(['p1', 'p2'])).toEqual([page(1), page(2)]);
    } finally {
      await reader?.close();
      await proxy.close();
      client.disconnect();
    }
  });
});

describe.skipIf(!hasRedisServer)(
  'shared msgpack structures across a Redis restart without persistence',
  () => {
    it('writes values that other instances can read once Redis is back (the list died with it)', async () => {
      const server = await startPrivateRedis();
      const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      const options = { redis, prefix: 'restart:', bus: false, l1: { maxEntries: 1 } };
      const writer = new Cache(options);
      try {
        await writer.ready();
        await writer.set('k0', page(0));
        await writer.set('k1', page(1)); // second sighting: the shapes are proposed
        await delay(100); // appended to the list
        await writer.set('k2', page(2));
        expect((await redis.getBuffer('restart:v:k2'))![5]).toBeGreaterThan(0); // uses shared structures
        await server.kill();
        await delay(200);
        await server.restart();
        // The writer's first writes after the restart must be readable by an instance that starts
        // now (and creates a new list): the writer distrusts its list once the connection closed.
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline && (await redis.ping().catch(() => 'down')) !== 'PONG') await delay(100);
        await writer.set('after', page(42));
        const reader = new Cache(options);
        await reader.ready();
        expect(await reader.get('after')).toEqual(page(42));
        await writer.set('later', page(43));
        expect(await reader.get('later')).toEqual(page(43));
        await reader.close();
      } finally {
        await writer.close();
        redis.disconnect();
        await server.stop();
      }
    });
  },
);
