import { awayFromWindowEdge, isReachable, redisTimeOf, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { type AlgorithmName, algorithmNames } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// The check and adjust scripts on a key whose state a Redis clock two hours ahead wrote (a
// failover to a replica whose clock was that far off, then back): Redis's TIME cannot be moved,
// so the test fills the key and then moves every time in its state two hours ahead. Such a state
// is further ahead than any clock step back (maxClockStepBackMs): the key starts afresh, instead
// of being refused, with a two-hour Retry-After, until Redis's clock catches up.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const twoHours = 2 * 3_600_000;

/** The keys of state under `prefix`: not the limiters' records of their namespaces (see RedisStore). */
async function stateKeys(client: Redis, prefix: string): Promise<string[]> {
  return (await client.keys(`${prefix}*`)).filter((key) => !key.endsWith('}:namespaces'));
}

/**
 * Moves every time stored under `prefix` `ms` ahead: a window's start (hash field a), a bucket's
 * time (b; prelude.lua's FIELDS), a sliding log's entries (scores and members 'time:cost:n').
 */
async function moveAhead(client: Redis, prefix: string, algorithm: AlgorithmName, ms: number): Promise<void> {
  const keys = await stateKeys(client, prefix);
  expect(keys.length).toBeGreaterThan(0);
  const timeField = algorithm === 'token-bucket' || algorithm === 'leaky-bucket' ? '1:b' : '1:a';
  for (const key of keys) {
    const type = await client.type(key);
    if (type === 'hash' && algorithm !== 'sliding-log') {
      const time = await client.hget(key, timeField);
      expect(time).not.toBeNull();
      await client.hset(key, timeField, String(Number(time) + ms));
    } else if (type === 'zset') {
      const members = await client.zrange(key, 0, -1);
      await client.del(key);
      for (const member of members) {
        const [time, cost, index] = member.split(':');
        const moved = Number(time) + ms;
        await client.zadd(key, moved, `${moved}:${cost}:${index}`);
      }
    }
    await client.pexpire(key, 3 * ms);
  }
}

describe.skipIf(skip !== undefined)('a Redis state stamped hours ahead of Redis’s clock', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(async () => {
    await client.quit();
  });

  for (const algorithm of algorithmNames) {
    it(`${algorithm}: the key is admitted again, and a refund or penalty counts in a fresh state`, async () => {
      const prefix = `${uniqueName('rl-step')}:`;
      const options = {
        limits: [{ algorithm, limit: 2, windowMs: 1_000 }],
        // About what Redis stores, not the deadline: a slow machine must not cut it.
        deadlineMs: 5_000,
      };
      const filler = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      // The third check is refused only in the one-second window the first two filled.
      await awayFromWindowEdge(1_000, 400, redisTimeOf(client));
      await filler.check('k');
      await filler.check('k');
      expect((await filler.check('k')).allowed).toBe(false);
      await filler.close();
      await moveAhead(client, prefix, algorithm, twoHours);

      // A fresh instance: the filler's local block cache would answer without asking Redis.
      const penalizer = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      const penalized = await penalizer.penalize('k', 2);
      expect(penalized.remaining).toBe(0);
      expect(penalized.resetMs).toBeLessThanOrEqual(2_000);
      await penalizer.close();
      await moveAhead(client, prefix, algorithm, twoHours);

      const checker = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      const result = await checker.check('k');
      expect(result).toMatchObject({ allowed: true, remaining: 1 });
      expect(result.resetMs).toBeLessThanOrEqual(2_000);
      const refunded = await checker.refund('k', 1);
      expect(refunded.remaining).toBe(2);
      await checker.close();
      // A refunded sliding log is empty, so its set is gone.
      const left = await client.keys(`${prefix}*`);
      if (left.length > 0) await client.del(...left);
    });
  }

  /**
   * Moves the block of every hash under `prefix` `ms` ahead: its end ('bu') and, where recorded, its
   * start ('bs'), as a Redis clock that far ahead would have written them.
   */
  async function moveBlockAhead(prefix: string, ms: number): Promise<string> {
    const keys = await stateKeys(client, prefix);
    expect(keys.length).toBe(1);
    const key = keys[0]!;
    const [until, since] = await client.hmget(key, 'bu', 'bs');
    expect(Number(until)).toBeGreaterThan(0);
    await client.hset(key, 'bu', String(Number(until) + ms));
    if (since !== null) await client.hset(key, 'bs', String(Number(since) + ms));
    await client.pexpire(key, 3 * ms);
    return key;
  }

  // A block written while Redis's clock was two hours ahead: once the clock is back, what remains
  // of it is at most its own length (memory alike: test/clock-step-bound.test.ts), on each script
  // path: one limit without auto-block (check_single), several (check_group), auto-block, peek.
  const blockCases = [
    { name: 'a manual block of a one-limit key', limits: [{ limit: 5, windowMs: 1_000 }], auto: false },
    {
      name: 'a manual block of a two-limit key',
      limits: [
        { name: 'second', limit: 5, windowMs: 1_000 },
        { name: 'minute', limit: 50, windowMs: 60_000 },
      ],
      auto: false,
    },
    { name: 'an auto-block', limits: [{ limit: 1, windowMs: 1_000 }], auto: true },
  ];
  for (const { name, limits, auto } of blockCases) {
    it(`${name} written by a Redis clock two hours ahead lasts its own length`, async () => {
      const prefix = `${uniqueName('rl-step-bu')}:`;
      const options = {
        limits,
        deadlineMs: 5_000,
        localBlockCache: false,
        ...(auto ? { autoBlock: { violations: 2, withinMs: 60_000, blockMs: 30_000 } } : {}),
      } as const;
      const blocker = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      if (auto) {
        // The two refusals in the one-second window the first check filled.
        await awayFromWindowEdge(1_000, 400, redisTimeOf(client));
        await blocker.check('b');
        await blocker.check('b');
        expect((await blocker.check('b')).outcome).toBe('blocked');
      } else await blocker.block('b', 30_000);
      await blocker.close();
      const key = await moveBlockAhead(prefix, twoHours);

      const checker = createRateLimiter({ ...options, store: new RedisStore({ client, prefix }) });
      const peeked = await checker.peek('b');
      expect(peeked.outcome).toBe('blocked');
      expect(peeked.retryAfterMs).toBeLessThanOrEqual(30_000);
      const checked = await checker.check('b');
      expect(checked.outcome).toBe('blocked');
      expect(checked.retryAfterMs).toBeLessThanOrEqual(30_000);
      // Stored so: the block ends within its length of Redis's clock.
      const [seconds] = await client.time();
      expect(Number(await client.hget(key, 'bu'))).toBeLessThanOrEqual(Number(seconds) * 1_000 + 31_000);
      await checker.close();
      await client.del(key);
    });
  }

  it('violations counted by a Redis clock hours ahead start a fresh auto-block window', async () => {
    const prefix = `${uniqueName('rl-step-block')}:`;
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [{ limit: 1, windowMs: 60_000 }],
      autoBlock: { violations: 3, withinMs: 600_000, blockMs: 30_000 },
      deadlineMs: 5_000,
      // Every check asks Redis: no refusal is answered from the local block cache.
      localBlockCache: false,
    });
    // Every check after the first is refused only within the minute it opened.
    await awayFromWindowEdge(60_000, 3_000, redisTimeOf(client));
    await limiter.check('v');
    await limiter.check('v');
    await limiter.check('v');
    const [key] = await stateKeys(client, prefix);
    expect(await client.hget(key!, 'bv')).toBe('2');
    // The two violations' window, moved two hours ahead (as a clock that far ahead started it).
    const windowStart = Number(await client.hget(key!, 'bw'));
    await client.hset(key!, 'bw', String(windowStart + twoHours));
    expect((await limiter.check('v')).allowed).toBe(false);
    expect(await client.hget(key!, 'bv')).toBe('1');
    expect(await client.hget(key!, 'bu')).toBe('0');
    await limiter.close();
    await client.del(key!);
  });
});
