import { ManualClock } from '@noa/core';
import { generousDeadlineMs, type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { HoldingProxy } from './holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * deleteByTag reads a page's values, deletes those carrying the tag, then removes the page's
 * members from the tag's set. A write landing in between must neither lose its place in the
 * set nor survive the next deleteByTag of its tag. The SREM is held at a proxy so the write
 * lands in that window every time.
 */
describe.skipIf(started.skip !== undefined)('deleteByTag races', () => {
  let server: PrivateRedis;
  let proxy: HoldingProxy;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  function cacheOn(url: string, prefix: string, options: Partial<CacheOptions> = {}): Cache {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({ redis: client, prefix, operationTimeoutMs: generousDeadlineMs, ...options });
    caches.push(cache);
    return cache;
  }

  beforeAll(async () => {
    server = started.redis!;
    proxy = await HoldingProxy.start(server.port);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('a deleteByTag on another instance wins over a run that tags its result through the context only after it', async () => {
    const a = cacheOn(server.url, 'ctxtag:');
    const b = cacheOn(server.url, 'ctxtag:');
    await Promise.all([a.ready(), b.ready()]);
    let factoryStarted = () => {};
    const running = new Promise<void>((resolve) => {
      factoryStarted = resolve;
    });
    let finish: (value: string) => void = () => {};
    const source = new Promise<string>((resolve) => {
      finish = resolve;
    });
    const result = a.getOrSet<string>('k', async (ctx) => {
      factoryStarted();
      const value = await source; // read from the source before the change
      ctx.setOptions({ tags: ['t'] });
      return value;
    });
    await running;
    const heard = new Promise<void>((resolve) =>
      a.onInvalidation((message) => message.t === 'tag' && resolve()),
    );
    await b.deleteByTag('t');
    await heard;
    finish('older');
    expect(await result).toBe('older');
    // Not cached over the invalidation, in either tier: both instances compute again.
    expect(await a.get('k')).toBeUndefined();
    expect(await b.get('k')).toBeUndefined();
    expect(await b.getOrSet('k', () => 'fresh')).toBe('fresh');
  });

  it('a key tagged again between the value check and the SREM stays in the tag set', async () => {
    const deleting = cacheOn(proxy.url, 'race1:');
    const writer = cacheOn(server.url, 'race1:');
    await Promise.all([deleting.ready(), writer.ready()]);
    // Rewritten without the tag: the set still names it, the value no longer carries it.
    await writer.set('k', 'v1', { tags: ['t'] });
    await writer.set('k', 'v2', { tags: ['u'] });
    proxy.holdMatching = /SREM/i;
    const call = deleting.deleteByTag('t');
    await proxy.held();
    // Written with the tag after deleteByTag checked the value: newer than the delete, kept.
    await writer.set('k', 'v3', { tags: ['t'] });
    proxy.release();
    expect(await call).toBe(0);
    expect(await writer.get('k')).toBe('v3');
    // v3 carries the tag: the next deleteByTag must find it.
    expect(await deleting.deleteByTag('t')).toBe(1);
    const fresh = cacheOn(server.url, 'race1:');
    expect(await fresh.get('k')).toBeUndefined();
  }, 30_000);

  it('a key deleted by the tag and written again with it before the SREM stays in the tag set', async () => {
    const deleting = cacheOn(proxy.url, 'race2:');
    const writer = cacheOn(server.url, 'race2:');
    await Promise.all([deleting.ready(), writer.ready()]);
    await writer.set('k', 'v1', { tags: ['t'] });
    proxy.holdMatching = /SREM/i;
    const call = deleting.deleteByTag('t');
    await proxy.held();
    await writer.set('k', 'v2', { tags: ['t'] });
    proxy.release();
    expect(await call).toBe(1);
    expect(await deleting.deleteByTag('t')).toBe(1);
    const fresh = cacheOn(server.url, 'race2:');
    expect(await fresh.get('k')).toBeUndefined();
  }, 30_000);

  it('a sliding entry read (slid) between the value check and the compare-and-set is still deleted', async () => {
    const clock = new ManualClock(Date.now());
    const sliding = { clock, slidingTtlMs: 10_000, ttlMs: 60_000 };
    const deleting = cacheOn(proxy.url, 'race3:', sliding);
    const reader = cacheOn(server.url, 'race3:', sliding);
    await Promise.all([deleting.ready(), reader.ready()]);
    await reader.set('k', 'v1', { tags: ['t'] });
    // The compare-and-set is the deleting connection's first script.
    proxy.holdMatching = /EVAL/i;
    const call = deleting.deleteByTag('t');
    await proxy.held();
    const admin = new Redis(server.url);
    clients.push(admin);
    const before = await admin.getBuffer('race3:v:k');
    clock.advance(1_000);
    // A fresh instance reads L2, which moves the frame of timings in Redis.
    expect(await cacheOn(server.url, 'race3:', sliding).get('k')).toBe('v1');
    expect((await admin.getBuffer('race3:v:k'))?.equals(before!)).toBe(false);
    proxy.release();
    expect(await call).toBe(1);
    expect(await cacheOn(server.url, 'race3:', sliding).get('k')).toBeUndefined();
  }, 30_000);

  it('deleteByTag of several tags sharing keys deletes, counts and reports each key once', async () => {
    const writer = cacheOn(server.url, 'race4:');
    const fresh = cacheOn(server.url, 'race4:');
    await Promise.all([writer.ready(), fresh.ready()]);
    await writer.set('ab', 1, { tags: ['a', 'b'] });
    await writer.set('b', 2, { tags: ['b'] });
    await writer.set('a', 3, { tags: ['a', 'c'] });
    await writer.set('c', 4, { tags: ['c'] });
    const reported: string[] = [];
    fresh.on('delete', ({ key }) => reported.push(key));
    // `fresh` has nothing in L1: every key is found through the tag sets.
    expect(await fresh.deleteByTag(['b', 'a', 'b'])).toBe(3);
    expect(reported.sort()).toEqual(['a', 'ab', 'b']);
    expect(await cacheOn(server.url, 'race4:').get('c')).toBe(4);
    for (const key of ['ab', 'b', 'a']) expect(await cacheOn(server.url, 'race4:').get(key)).toBeUndefined();
  }, 30_000);

  it('deleteByTag deletes tagged values it cannot decode (foreign bytes, a future format) without failing', async () => {
    const deleting = cacheOn(server.url, 'race5:', { onBackendError: 'throw' });
    await deleting.ready();
    const admin = new Redis(server.url);
    clients.push(admin);
    await admin.set('race5:v:foreign', 'not a cache value');
    // Header of a format this release does not know (7), and a body no serializer reads.
    await admin.set('race5:v:future', Buffer.from([0x70, 1, 2, 3, 4, 5, 6, 7, 8]));
    await admin.sadd('race5:__tag:t', 'foreign', 'future');
    // Which tags they carry is unknown: a miss is all they are to this instance, as before tags were checked.
    expect(await deleting.deleteByTag('t')).toBe(2);
    expect(await admin.exists('race5:v:foreign', 'race5:v:future', 'race5:__tag:t')).toBe(0);
  }, 30_000);
});
