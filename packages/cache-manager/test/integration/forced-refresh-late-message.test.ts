import { generousDeadlineMs, type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * A `forceFresh` run on an instance that hears the bus message of the value it replaces only
 * while it runs (a late message: under load, or across a Cluster's bus). The message announces
 * the write the run read before it started, not a change made since: the run's value is still
 * the key's new value, in this instance's L1, in L2 and for every other instance.
 */
describe.skipIf(started.skip !== undefined)('a forced run that hears of the value it replaces late', () => {
  const prefix = 'forced-late:';
  let server: PrivateRedis;
  /** Holds the bus messages of the refreshing instance. */
  let replies: ReplyHoldingProxy;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  async function open(url: string, options: CacheOptions = {}): Promise<Cache> {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix,
      ttlMs: 60_000,
      operationTimeoutMs: generousDeadlineMs,
      ...options,
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  /** Resolves once `cache` has applied a bus message naming `key`. */
  function heard(cache: Cache, key: string): Promise<void> {
    return new Promise((resolve) => {
      const stop = cache.onInvalidation((message) => {
        if (!message.k.includes(key)) return;
        stop();
        resolve();
      });
    });
  }

  beforeAll(async () => {
    server = started.redis!;
    replies = await ReplyHoldingProxy.start(server.port);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await replies?.close();
    await server?.stop();
  });

  it.each([
    ['read from L2 first', true],
    ['nothing read first', false],
  ])('the forced value is cached (%s)', async (_, readFirst) => {
    const key = `k-${readFirst}`;
    const writer = await open(server.url);
    const fresh = await open(replies.url);
    replies.holdSubscribers();
    await writer.set(key, 'old');
    if (readFirst) expect(await fresh.getOrSet(key, async () => 'plain')).toBe('old');
    let runs = 0;
    const forced = await fresh.getOrSet(
      key,
      async () => {
        runs += 1;
        // The message of the write of 'old' arrives while the run lasts.
        const message = heard(fresh, key);
        replies.release();
        await message;
        return 'forced';
      },
      { forceFresh: true },
    );
    expect(forced).toBe('forced');
    expect(runs).toBe(1);
    expect(await fresh.get(key)).toBe('forced');
    expect(await (await open(server.url)).get(key)).toBe('forced');
  });
});
