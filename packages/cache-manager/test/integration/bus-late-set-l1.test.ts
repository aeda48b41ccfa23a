import { generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cache } from '../../src/index.js';
import { heard, privateRedisCaches } from './helpers.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * A `set` bus message that reaches an instance after it read the announced write from L2 (a
 * late message: under load, or across a Cluster's bus). Its L1 copy is that very write (the
 * value carries the write's id, and so does the message): the message announces nothing it
 * does not hold, so the copy stays and the next read is an L1 hit, not one more L2 read. A
 * message of any other write still drops it. L2 reads are counted by the private server
 * (`INFO commandstats`).
 */
describe.skipIf(started.skip !== undefined)('a late bus message of the write L1 holds', () => {
  const caches = privateRedisCaches(started, {
    prefix: 'late-set:',
    ttlMs: 60_000,
    operationTimeoutMs: generousDeadlineMs,
  });
  /** Holds the bus messages of the reading instance. */
  let replies: ReplyHoldingProxy;

  /** The L2 reads (GET and MGET) the server has run. */
  async function reads(): Promise<number> {
    const stats = await caches.admin.info('commandstats');
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    return calls('get') + calls('mget');
  }

  beforeAll(async () => {
    replies = await ReplyHoldingProxy.start(caches.server.port);
  });

  afterAll(async () => {
    await replies?.close();
  });

  /** Each way a read fills L1 from L2. */
  const readers: [string, (cache: Cache, key: string) => Promise<unknown>][] = [
    ['get', (cache, key) => cache.get(key)],
    ['getOrSet', (cache, key) => cache.getOrSet(key, async () => 'computed')],
    ['getMany', async (cache, key) => (await cache.getMany([key]))[0]],
    [
      'getOrSetMany',
      async (cache, key) => (await cache.getOrSetMany([key], async (keys) => keys.map(() => 'computed')))[0],
    ],
  ];

  it.each(readers)('the copy %s read stays in L1: the next read is an L1 hit', async (name, read) => {
    const key = `kept-${name}`;
    const writer = await caches.open();
    const reader = await caches.openAt(replies.url);
    replies.holdSubscribers();
    await writer.set(key, 'v1');
    const before = await reads();
    expect(await read(reader, key)).toBe('v1');
    expect(await reads()).toBe(before + 1);
    // The message of the write of 'v1' arrives only now.
    const message = heard(reader, key);
    replies.release();
    await message;
    const hits = reader.stats().hits.l1;
    expect(await reader.get(key)).toBe('v1');
    expect(reader.stats().hits.l1).toBe(hits + 1);
    expect(await reads()).toBe(before + 1);
  });

  it('a late message of another write still drops the copy', async () => {
    const key = 'dropped';
    const writer = await caches.open();
    const reader = await caches.openAt(replies.url);
    replies.holdSubscribers();
    await writer.set(key, 'v1');
    expect(await reader.get(key)).toBe('v1');
    await writer.set(key, 'v2');
    // Both writes' messages (or one naming both) arrive now: first the write L1 holds, then a
    // later one.
    const second = new Promise<void>((resolve) => {
      let count = 0;
      const stop = reader.onInvalidation((message) => {
        count += message.k.filter((name) => name === key).length;
        if (count < 2) return;
        stop();
        resolve();
      });
    });
    replies.release();
    await second;
    const before = await reads();
    expect(await reader.get(key)).toBe('v2');
    expect(await reads()).toBe(before + 1);
  });
});
