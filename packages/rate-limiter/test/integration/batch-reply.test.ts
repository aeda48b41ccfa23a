import { serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { checkScript, replyValues } from '../../src/stores/lua-script.js';

// A standalone call of several keys (the batch form) replies its numbers as one string, as the
// one-key short form does (redis-cluster-one-key.test.ts): ioredis 6 decodes each integer of a
// reply at a cost (~3,700 instructions), a string at about the cost of one.

const windowMs = 3_600_000;
let client: Redis;
let prefix: string;

beforeAll(async () => {
  client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
  await client.connect();
  prefix = `${uniqueName('batch-reply')}:`;
});

afterAll(async () => {
  const stored = await client.keys(`${prefix}*`);
  if (stored.length > 0) await client.del(...stored);
  await client.quit();
});

describe('standalone Redis, the batch reply', () => {
  it('is one string of the numbers an array carried, large ones exact', async () => {
    const limit = Number.MAX_SAFE_INTEGER - 1;
    // The batch form: expiresAt, nGroups, autoBlock, nSets, then the set (one fixed window),
    // oneCostEach, then per key its set and cost (a large cost, then 1).
    const argv = [0, 2, 0, 1, 1, 1, limit, windowMs, limit, 0, 1, 1, 2 ** 52, 1, 1];
    const reply = await client.eval(checkScript, 2, `${prefix}{a}`, `${prefix}{b}`, ...argv);
    expect(typeof reply).toBe('string');
    const values = replyValues(reply as string)!;
    // Redis's clock, ran, then per key: blocked, allowed, remaining, reset, retry, delay, next.
    expect(values).toHaveLength(2 + 2 * 7);
    expect(values[0]).toBeGreaterThan(1_700_000_000_000);
    expect(values[1]).toBe(1);
    expect(values.slice(2, 5)).toEqual([0, 1, limit - 2 ** 52]);
    expect(values.slice(9, 12)).toEqual([0, 1, limit - 1]);
    // The same reset time for both keys (one window, one clock), and no retry or delay.
    expect(values[5]).toBe(values[12]);
    expect([values[6], values[7], values[13], values[14]]).toEqual([0, 0, 0, 0]);
  });

  it('is read by the store: keys checked in one tick share a call and get their own counts', async () => {
    const store = new RedisStore({ client, prefix: `${prefix}s:` });
    const limiter = createRateLimiter({ store, limits: [{ limit: 3, windowMs }], localBlockCache: false });
    const keys = ['x', 'y', 'x', 'z', 'x', 'x'];
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    expect(results.map((result) => [result.key, result.allowed, result.remaining])).toEqual([
      ['x', true, 2],
      ['y', true, 2],
      ['x', true, 1],
      ['z', true, 2],
      ['x', true, 0],
      ['x', false, 0],
    ]);
    expect(results.every((result) => result.source === 'store')).toBe(true);
    await limiter.close();
  });
});
