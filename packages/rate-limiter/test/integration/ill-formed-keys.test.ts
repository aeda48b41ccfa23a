import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createRateLimiter, MemoryStore, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 3 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 3_000);
});

// Keys given to check() directly (not through a keyBy function) may hold a lone UTF-16
// surrogate, as `JSON.parse('"\\ud800"')` makes of a client's user id. Redis takes a key's UTF-8,
// which writes every lone surrogate as U+FFFD: without care these keys share one quota on Redis
// while the memory store keeps them apart. Both stores must count them apart, and reset each.
const keys = ['\ud800', '\udbff', '\ufffd', 'a\udc00b', 'a\ufffdb'];

const stores: [string, () => Promise<{ limiter: RateLimiter; close: () => Promise<void> }>][] = [
  [
    'memory',
    async () => {
      const limiter = createRateLimiter({
        limits: [{ limit: 1, windowMs: 60_000 }],
        store: new MemoryStore(),
      });
      return { limiter, close: () => limiter.close() };
    },
  ],
  [
    'redis',
    async () => {
      const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
      await client.connect();
      const prefix = `${uniqueName('rlwf')}:`;
      const limiter = createRateLimiter({
        limits: [{ limit: 1, windowMs: 60_000 }],
        store: new RedisStore({ client, prefix }),
        deadlineMs: 5_000,
      });
      return {
        limiter,
        close: async () => {
          await limiter.close();
          const found = await client.keys(`${prefix}*`);
          if (found.length > 0) await client.del(...found);
          client.disconnect();
        },
      };
    },
  ],
];

describe.each(stores)('keys that are not well-formed Unicode, %s store', (name, open) => {
  const skipped = name === 'redis' ? skip : undefined;
  let subject: { limiter: RateLimiter; close: () => Promise<void> } | undefined;
  beforeAll(async () => {
    if (!skipped) subject = await open();
  });
  afterAll(async () => subject?.close());

  it.skipIf(skipped !== undefined)('counts each key apart and resets each alone', async () => {
    const limiter = subject!.limiter;
    for (const key of keys) expect((await limiter.check(key)).allowed, JSON.stringify(key)).toBe(true);
    for (const key of keys) expect((await limiter.check(key)).allowed, JSON.stringify(key)).toBe(false);
    await limiter.reset('\ud800');
    expect((await limiter.check('\ud800')).allowed).toBe(true);
    expect((await limiter.check('\udbff')).allowed).toBe(false);
    expect((await limiter.check('\ufffd')).allowed).toBe(false);
  });
});
