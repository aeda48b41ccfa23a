import { serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { admitted } from '../../src/stores/store.js';
import { defaultNamespace } from '../rule-namespace.js';

// A standalone Redis answers a batch of more than 32 keys in several script calls (chunks). A
// chunk that fails (here: one of its keys holds a string, so its script errors before writing;
// likewise a chunk that reaches Redis after its deadline) must not take the other chunks down:
// they were counted, so their keys are answered by their own chunk's outcome, not by a failure.

const limits = [{ limit: 5, windowMs: 3_600_000 }];
const keys = Array.from({ length: 40 }, (_, index) => `k${index}`);
// The first key of the second chunk: its chunk fails before counting anything.
const poisoned = 32;
let client: Redis;
let prefix: string;

beforeAll(async () => {
  client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
  await client.connect();
  prefix = `${uniqueName('chunks')}:`;
  await client.set(`${prefix}{${keys[poisoned]}}`, 'not a hash', 'PX', 600_000);
});

afterAll(async () => {
  const stored = await client.keys(`${prefix}*`);
  if (stored.length > 0) await client.del(...stored);
  await client.quit();
});

/** The fixed window's count the script stored for `key` (0 when nothing was counted). */
async function countOf(storePrefix: string, key: string): Promise<number> {
  return Number((await client.hget(`${storePrefix}{${key}}`, '1:b')) ?? 0);
}

describe('standalone Redis, a batch over several script calls with one failing', () => {
  it('consumeEach answers each key by its own chunk: counted keys by their outcome, the failed chunk by its error', async () => {
    const store = new RedisStore({ client, prefix });
    expect(store.consumeEach).toBeDefined();
    const policies: LimitPolicy[] = [{ name: 'hour', algorithm: 'fixed-window', ...limits[0]! }];
    const requests = keys.map((key) => ({ key, limits: policies, costs: [1] }));
    const settled = await Promise.allSettled(store.consumeEach!(requests, undefined, { deadlineMs: 5_000 }));
    for (let index = 0; index < keys.length; index += 1) {
      const answer = settled[index]!;
      if (index < poisoned) {
        expect(answer.status, keys[index]).toBe('fulfilled');
        if (answer.status === 'fulfilled') expect(admitted(answer.value[0]!)).toBe(true);
        expect(await countOf(prefix, keys[index]!)).toBe(1);
      } else {
        expect(answer.status, keys[index]).toBe('rejected');
        if (index !== poisoned) expect(await countOf(prefix, keys[index]!)).toBe(0);
      }
    }
    // consumeMany stays all-or-nothing (its one promise cannot carry a part's failure).
    await expect(store.consumeMany(requests, undefined)).rejects.toThrow(/WRONGTYPE/);
  });

  it("the limiter answers the keys of the chunks that counted from the store, and only the failed chunk's by its fail mode", async () => {
    const limiterPrefix = `${prefix}limiter:`;
    // The limiter's store key is its rule's namespace (`rl:default:<fingerprint>:`) and the key.
    const namespace = defaultNamespace(limits);
    await client.set(`${limiterPrefix}{${namespace}${keys[poisoned]}}`, 'not a hash', 'PX', 600_000);
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: limiterPrefix }),
      limits,
      failMode: 'closed',
      localBlockCache: false,
      breaker: { consecutiveFailures: 1_000_000 },
      deadlineMs: 5_000,
    });
    try {
      // One tick: every check is submitted before any store call answers.
      const results = await Promise.all(keys.map((key) => limiter.check(key)));
      for (let index = 0; index < keys.length; index += 1) {
        const result = results[index]!;
        if (index < poisoned) {
          expect(result.source, keys[index]).toBe('store');
          expect(result.allowed).toBe(true);
          expect(await countOf(limiterPrefix, `${namespace}${keys[index]}`)).toBe(1);
        } else {
          expect(result.source, keys[index]).toBe('fail-mode');
          expect(result.allowed).toBe(false);
        }
      }
    } finally {
      await limiter.close();
    }
  });
});
