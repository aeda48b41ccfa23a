import { ManualClock } from '@noa/core';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { autoBlockSchema } from '../../src/auto-block.js';
import {
  createRateLimiter,
  MemoryStore,
  quotaProblem,
  type RateLimiter,
  type RateLimitStore,
  rateLimitHeaders,
} from '../../src/index.js';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { type Target, targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Fixed windows of an hour and a day (aligned by Redis TIME, or Date.now in memory: one host, one
// clock): a test expects refusals from the window its first call opened, so none starts within
// 10 s of an hour's end (a day's is one too).
beforeEach(async () => {
  await awayFromWindowEdge(3_600_000, 10_000);
});
const limits: LimitPolicy[] = [{ name: 'd', algorithm: 'fixed-window', limit: 1, windowMs: 3_600_000 }];
// One refusal blocks; each repeat offence doubles the block, up to 700 ms.
const block = autoBlockSchema.parse({
  violations: 1,
  withinMs: 60_000,
  blockMs: 200,
  multiplier: 2,
  maxBlockMs: 700,
});

/** The block length each offence started, read right after it (one more refusal once the last ended). */
async function blockLengths(store: RateLimitStore, key: string, offences: number): Promise<number[]> {
  await store.consume(key, limits, [1], block);
  const lengths: number[] = [];
  for (let offence = 0; offence < offences; offence += 1) {
    const [refused] = await store.consume(key, limits, [1], block);
    expect(refused!.decisions[0]!.allowed).toBe(false);
    const [probe] = await store.consume(key, limits, [0], block);
    lengths.push(probe!.blockedMs);
    await sleep(probe!.blockedMs + 30);
  }
  return lengths;
}

describe.skipIf(skip !== undefined)('auto-block grows for repeat offenders on Redis as in memory', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(() => client.disconnect());

  it('blocks 200, 400, then 700 ms (capped) on both stores', async () => {
    const redis = new RedisStore({ client, prefix: `${uniqueName('rlab')}:` });
    const memory = new MemoryStore();
    const [onRedis, inMemory] = await Promise.all([
      blockLengths(redis, 'offender', 3),
      blockLengths(memory, 'offender', 3),
    ]);
    // Each is read just after the block began: at most its full length, and a little less on a
    // slow machine (100 ms of slack still tells 200, 400 and 700 apart).
    for (const lengths of [onRedis, inMemory])
      [200, 400, 700].forEach((expected, offence) => {
        expect(lengths[offence]).toBeLessThanOrEqual(expected);
        expect(lengths[offence]).toBeGreaterThan(expected - 100);
      });
    await memory.close();
  });
});

/**
 * The violations' newest slot start (`bw`) moved back, and the start the earlier slots' counts
 * (`bp`, `<start>:<counts>`) are stamped with: as if that much time had passed.
 */
async function moveViolationTimesBack(client: Redis | Cluster, key: string, ms: number): Promise<void> {
  const [start, earlier] = await client.hmget(key, 'bw', 'bp');
  expect(start).not.toBeNull();
  await client.hset(key, 'bw', String(Number(start) - ms));
  const stamped = /^(\d+):(.*)$/.exec(earlier ?? '');
  if (stamped !== null) await client.hset(key, 'bp', `${Number(stamped[1]) - ms}:${stamped[2]}`);
}

/** Redis's clock in ms, as the scripts read it. */
async function redisNow(client: Redis | Cluster): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

// One connection per target for the file's two suites on it, stopped after both: a private
// cluster takes seconds to start.
const connections = new Map<Target, ReturnType<Target['connect']>>();
function connectionTo(target: Target): ReturnType<Target['connect']> {
  let connection = connections.get(target);
  if (connection === undefined) {
    connection = target.connect();
    connections.set(target, connection);
  }
  return connection;
}
afterAll(async () => {
  for (const connection of connections.values()) await (await connection).stop();
});

describe.skipIf(skip !== undefined).each(targets)(
  'auto-block counts violations in a sliding withinMs on $name as in memory',
  (target) => {
    // violations 3 within 10 s: one refusal, a second 9 s later, a third 1.1 s after that (10.1 s
    // after the first: a window that started at the first violation has ended) and a fourth at
    // once: the last three fall within 1.1 s, and the key is blocked. Redis's TIME cannot be moved,
    // so its state's times are moved back instead, as the memory store's clock moves on.
    const sliding = autoBlockSchema.parse({ violations: 3, withinMs: 10_000, blockMs: 60_000 });
    let client: Redis | Cluster;
    beforeAll(async () => {
      ({ client } = await connectionTo(target));
    }, 60_000);

    /** Refusals with `elapse(ms)` between them; the blockedMs right after each. */
    async function violations(
      store: RateLimitStore,
      elapse: (ms: number) => Promise<void>,
    ): Promise<number[]> {
      await store.consume('abuser', limits, [1], sliding);
      const blocked: number[] = [];
      for (const gap of [0, 9_000, 1_100, 0]) {
        await elapse(gap);
        const [refused] = await store.consume('abuser', limits, [1], sliding);
        expect(refused!.decisions[0]!.allowed).toBe(false);
        blocked.push(refused!.blockedMs);
      }
      return blocked;
    }

    it('blocks at the third violation within 10 s of the second, though 10.1 s after the first', async () => {
      const prefix = `${uniqueName('rlabs')}:`;
      const redis = new RedisStore({ client, prefix });
      const clock = new ManualClock(1_700_000_000_000);
      const memory = new MemoryStore({ clock });
      const onRedis = await violations(redis, async (ms) => {
        if (ms === 0) return;
        await moveViolationTimesBack(client, `${prefix}{abuser}`, ms);
      });
      const inMemory = await violations(memory, async (ms) => {
        clock.advance(ms);
      });
      for (const blocked of [onRedis, inMemory]) {
        // Not blocked by the first two; blocked by the fourth at the latest.
        expect(blocked.slice(0, 2)).toEqual([0, 0]);
        expect(blocked[3]).toBeGreaterThan(0);
      }
      await memory.close();
      await client.del(`${prefix}{abuser}`);
    });

    it('a release before bp (a rolling deploy) that starts a new window leaves no earlier counts behind', async () => {
      // Two refusals 3 s apart (the second in a later quarter: bp holds the first), then 11 s
      // pass and a server of the release before bp refuses the key: its check.lua found its
      // window over and wrote a new one (bv 1, bw now) with HSET of bv, bw, bu and bo, leaving bp
      // as it was. The next refusal is the second within 10 s: not a block (it was: the stale bp
      // counted as the new window's earlier quarters). A third within 10 s blocks.
      const prefix = `${uniqueName('rlabd')}:`;
      const key = `${prefix}{abuser}`;
      const redis = new RedisStore({ client, prefix });
      const refuse = async () => {
        const [refused] = await redis.consume('abuser', limits, [1], sliding);
        expect(refused!.decisions[0]!.allowed).toBe(false);
        // Whether it started a block: a free check right after it tells.
        const [probe] = await redis.consume('abuser', limits, [0], sliding);
        return probe!.blockedMs;
      };
      await redis.consume('abuser', limits, [1], sliding);
      expect(await refuse()).toBe(0);
      await moveViolationTimesBack(client, key, 3_000);
      expect(await refuse()).toBe(0);
      expect(await client.hget(key, 'bp')).not.toBe('');
      await moveViolationTimesBack(client, key, 11_000);
      // The release before bp: `if now - bw >= within then bv, bw = 0, now end; bv = bv + 1`.
      await client.hset(key, 'bv', '1', 'bw', String(await redisNow(client)));
      expect(await refuse()).toBe(0);
      expect(await refuse()).toBeGreaterThan(0);
      await client.del(key);
    });

    it('an unblock by a release before bp (a rolling deploy) clears the earlier counts too', async () => {
      // Two refusals 3 s apart (the second in a later quarter: bp holds the first), then a server
      // of the release before bp unblocks the key: its adjust.lua wrote bv 0 and bu now (HSET of
      // bv, bw, bu and bo), leaving bw and bp, so the first refusal still counted and the second
      // after the unblock blocked the key. An unblock clears recent violations: the third blocks.
      const prefix = `${uniqueName('rlabu')}:`;
      const key = `${prefix}{abuser}`;
      const redis = new RedisStore({ client, prefix });
      const refuse = async () => {
        const [refused] = await redis.consume('abuser', limits, [1], sliding);
        expect(refused!.decisions[0]!.allowed).toBe(false);
        return refused!.blockedMs;
      };
      await redis.consume('abuser', limits, [1], sliding);
      expect(await refuse()).toBe(0);
      await moveViolationTimesBack(client, key, 3_000);
      expect(await refuse()).toBe(0);
      expect(await client.hget(key, 'bp')).toMatch(/:1$/);
      // The release before bp: `bu = math.min(bu, now); bv = 0`, then HSET bv, bw, bu, bo.
      await client.hset(key, 'bv', '0', 'bu', String(await redisNow(client)));
      expect(await refuse()).toBe(0);
      expect(await refuse()).toBe(0);
      expect(await refuse()).toBeGreaterThan(0);
      await client.del(key);
    });

    it('a refusal whose clock went back counts at its own time: refusals a minute apart do not block', async () => {
      // The key's violations stamped 5 minutes ahead of Redis's clock (a failover to a replica
      // behind), then refusals a minute apart: each starts the count again (they counted together
      // in the newest quarter, and the third blocked). Three within 10 s still block.
      const prefix = `${uniqueName('rlabc')}:`;
      const key = `${prefix}{abuser}`;
      const redis = new RedisStore({ client, prefix });
      const refuse = async () => {
        const [refused] = await redis.consume('abuser', limits, [1], sliding);
        expect(refused!.decisions[0]!.allowed).toBe(false);
        const [probe] = await redis.consume('abuser', limits, [0], sliding);
        return probe!.blockedMs;
      };
      await redis.consume('abuser', limits, [1], sliding);
      expect(await refuse()).toBe(0);
      await moveViolationTimesBack(client, key, -300_000);
      expect(await refuse()).toBe(0);
      await moveViolationTimesBack(client, key, 60_000);
      expect(await refuse()).toBe(0);
      expect(await refuse()).toBe(0);
      expect(await refuse()).toBeGreaterThan(0);
      await client.del(key);
    });
  },
);

describe.skipIf(skip !== undefined)(
  'auto-block on Redis counts every refusal, the local block cache on',
  () => {
    // The local block cache (on by default) answers a refused key here for up to a second without
    // asking Redis: those refusals were recorded nowhere, so a client hammering its key was not
    // blocked (violations 5 within 10 s: Redis saw one refusal a second, and never five within
    // 10 s... it saw them only once the second had passed). Every refusal counts, as in memory; a
    // blocked key is still refused locally.
    let client: Redis;
    beforeAll(async () => {
      client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
      await client.connect();
    });
    afterAll(() => client.disconnect());

    it('blocks at the fifth refusal as the memory store does', async () => {
      const options = {
        limits: [{ limit: 1, windowMs: 60_000 }],
        autoBlock: { violations: 5, withinMs: 10_000, blockMs: 60_000 },
      };
      const prefix = `${uniqueName('rlabl')}:`;
      const onRedis = createRateLimiter({
        ...options,
        store: new RedisStore({ client, prefix }),
        deadlineMs: 5_000,
      });
      const inMemory = createRateLimiter(options);
      // Both stores' 24 checks in one minute window.
      await awayFromWindowEdge(60_000, 3_000);
      const outcomes = async (limiter: RateLimiter) => {
        const seen: string[] = [];
        for (let index = 0; index < 12; index += 1) seen.push((await limiter.check('abuser')).outcome);
        return seen;
      };
      // The fifth refusal starts the block and answers as blocked.
      const expected = ['allowed', ...Array<string>(4).fill('limited'), ...Array<string>(7).fill('blocked')];
      expect(await outcomes(inMemory)).toEqual(expected);
      expect(await outcomes(onRedis)).toEqual(expected);
      await Promise.all([onRedis.close(), inMemory.close()]);
      await client.del(`${prefix}{default:abuser}`);
    });
  },
);

describe.skipIf(skip !== undefined).each(targets)(
  'the refusal that starts a block answers as blocked on $name as in memory',
  (target) => {
    // The N-th violation starts the block: it was answered `limited`, with the limits that still
    // had room showing it ("day";r=98 while the key was blocked for a minute) and the problem
    // saying "Quota exceeded"; and, not being a block, the local block cache did not answer the
    // key's next check, which went to Redis once more per block and instance.
    let client: Redis | Cluster;
    beforeAll(async () => {
      ({ client } = await connectionTo(target));
    }, 60_000);

    it('outcome blocked, every limit refused until the block ends, the next check answered locally', async () => {
      const options = {
        limits: [
          { name: 'minute', limit: 1, windowMs: 60_000 },
          { name: 'day', algorithm: 'token-bucket' as const, limit: 100, windowMs: 86_400_000 },
        ],
        autoBlock: { violations: 2, withinMs: 10_000, blockMs: 60_000 },
      };
      const prefix = `${uniqueName('rlabt')}:`;
      const onRedis = createRateLimiter({
        ...options,
        store: new RedisStore({ client, prefix }),
        deadlineMs: 5_000,
      });
      const inMemory = createRateLimiter(options);
      // The second check must be refused by the minute the first opened.
      await awayFromWindowEdge(60_000, 3_000);
      for (const limiter of [inMemory, onRedis]) {
        expect((await limiter.check('abuser')).outcome).toBe('allowed');
        expect((await limiter.check('abuser')).outcome).toBe('limited');
        const starting = await limiter.check('abuser');
        expect(starting).toMatchObject({ allowed: false, outcome: 'blocked', source: 'store' });
        expect(starting.retryAfterMs).toBeGreaterThan(59_000);
        expect(starting.retryAfterMs).toBeLessThanOrEqual(60_000);
        for (const limit of starting.limits) {
          expect(limit.allowed, limit.name).toBe(false);
          expect(limit.retryAfterMs, limit.name).toBeGreaterThan(59_000);
        }
        const headers = rateLimitHeaders(starting);
        expect(headers.RateLimit).toMatch(/^"minute";r=0;t=60, "day";r=0;t=60$/);
        expect(quotaProblem(starting).detail).toBe('Too many requests over the limit: blocked for 60 s.');
        const next = await limiter.check('abuser');
        expect(next.outcome).toBe('blocked');
        // The memory store has no local cache: it is the store.
        expect(next.source).toBe(limiter === onRedis ? 'local-cache' : 'store');
      }
      await Promise.all([onRedis.close(), inMemory.close()]);
      await client.del(`${prefix}{default:abuser}`);
    });

    it("after a block's end a refusal goes to the store, which counts it, though the window still refuses", async () => {
      // A 300 ms block of a key whose day is spent: the local block cache remembered it until its
      // recheck a second later and answered the key's checks after the block's end too, as
      // `limited` refusals that Redis never counted (here, the one violation that blocks again).
      const options = {
        limits: [{ name: 'day', limit: 1, windowMs: 86_400_000 }],
        autoBlock: { violations: 1, withinMs: 10_000, blockMs: 300 },
      };
      const prefix = `${uniqueName('rlabe')}:`;
      const onRedis = createRateLimiter({
        ...options,
        store: new RedisStore({ client, prefix }),
        deadlineMs: 5_000,
      });
      const inMemory = createRateLimiter(options);
      for (const limiter of [inMemory, onRedis]) {
        expect((await limiter.check('abuser')).outcome).toBe('allowed');
        expect((await limiter.check('abuser')).outcome).toBe('blocked');
        await sleep(400);
        // A repeat offence: blocked again, for twice as long, by the store.
        const again = await limiter.check('abuser');
        expect(again).toMatchObject({ outcome: 'blocked', source: 'store' });
        expect(again.retryAfterMs).toBeGreaterThan(300);
      }
      await Promise.all([onRedis.close(), inMemory.close()]);
      await client.del(`${prefix}{default:abuser}`);
    });
  },
);
