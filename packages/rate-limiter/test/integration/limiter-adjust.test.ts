import { ManualClock, TimeoutError } from '@noa/core';
import {
  awayFromWindowEdge,
  isReachable,
  serviceUrl,
  startPrivateRedisOrSkip,
  uniqueName,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
  rateLimitHeaders,
} from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { privateRedisConnections, targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 5 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 5_000);
});

describe.skipIf(skip !== undefined).each(targets)('limiter adjustments on $name', (target) => {
  const connection = targetConnection(target);
  let limiter: RateLimiter;

  /**
   * Two limiters on one store prefix: `here` times its local block cache on a manual `clock`
   * (Redis keeps its own time for blocks and windows), `there` is another instance.
   */
  function twoInstances(prefix: string, options: Pick<RateLimiterOptions, 'limits' | 'deadlineMs'>) {
    const clock = new ManualClock(Date.now());
    const here = createRateLimiter({
      ...options,
      store: new RedisStore({ client: connection.client, prefix }),
      clock,
    });
    const there = createRateLimiter({
      ...options,
      store: new RedisStore({ client: connection.client, prefix }),
    });
    return { clock, here, there };
  }
  beforeAll(() => {
    limiter = createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rladj')}:` }),
      limits: [{ name: 'api', limit: 2, windowMs: 60_000 }],
      autoBlock: { violations: 5, withinMs: 60_000, blockMs: 10_000 },
      // These tests are about what Redis stores, not the deadline: a slow machine must not cut it.
      deadlineMs: 5_000,
    });
  });
  afterAll(async () => {
    await limiter.close();
  });

  it('a refund lifts a refusal the local block cache remembered', async () => {
    // Without auto-block: with it, every refusal goes to the store, which counts it.
    const cached = createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rladj')}:` }),
      limits: [{ name: 'api', limit: 2, windowMs: 60_000 }],
      deadlineMs: 5_000,
    });
    await cached.check('r');
    await cached.check('r');
    expect(await cached.check('r')).toMatchObject({ allowed: false, source: 'store' });
    expect(await cached.check('r')).toMatchObject({ allowed: false, source: 'local-cache' });
    expect(await cached.refund('r')).toMatchObject({ allowed: true, remaining: 1 });
    expect(await cached.check('r')).toMatchObject({ allowed: true, source: 'store', remaining: 0 });
    await cached.close();
  });

  it('with auto-block, a refusal is answered by the store (it counts it), a block by the local cache', async () => {
    await limiter.check('v');
    await limiter.check('v');
    for (let refusal = 0; refusal < 4; refusal += 1)
      expect(await limiter.check('v')).toMatchObject({ outcome: 'limited', source: 'store' });
    // The fifth refusal starts the block and answers as blocked: the next check is answered here.
    expect(await limiter.check('v')).toMatchObject({ outcome: 'blocked', source: 'store' });
    expect(await limiter.check('v')).toMatchObject({ outcome: 'blocked', source: 'local-cache' });
  });

  it('peek counts nothing; penalize drives remaining to 0', async () => {
    expect(await limiter.peek('p')).toMatchObject({ allowed: true, remaining: 2 });
    expect(await limiter.peek('p')).toMatchObject({ allowed: true, remaining: 2 });
    expect(await limiter.penalize('p', 7)).toMatchObject({ remaining: 0 });
    expect(await limiter.check('p')).toMatchObject({ allowed: false, outcome: 'limited' });
  });

  it('block answers as an auto-block, headers included, and unblock lifts it', async () => {
    const blocked = await limiter.block('b', 90_000);
    expect(blocked.outcome).toBe('blocked');
    const check = await limiter.check('b');
    expect(check).toMatchObject({ allowed: false, outcome: 'blocked' });
    expect(check.retryAfterMs).toBeGreaterThan(85_000);
    const headers = rateLimitHeaders(check);
    expect(headers.RateLimit).toBe(`"api";r=0;t=${headers['Retry-After']}`);
    expect(await limiter.unblock('b')).toMatchObject({ allowed: true, remaining: 2 });
    expect(await limiter.check('b')).toMatchObject({ allowed: true, source: 'store' });
  });

  it("another instance's unblock reaches this one within a second, not at the block's end", async () => {
    const prefix = `${uniqueName('rlunb')}:`;
    const options = { limits: [{ name: 'api', limit: 2, windowMs: 60_000 }], deadlineMs: 5_000 };
    const { clock, here, there } = twoInstances(prefix, options);
    await there.block('u', 3_600_000);
    expect(await here.check('u')).toMatchObject({ outcome: 'blocked', source: 'store' });
    expect(await here.check('u')).toMatchObject({ outcome: 'blocked', source: 'local-cache' });
    await there.unblock('u');
    clock.advance(1_000);
    expect(await here.check('u')).toMatchObject({ allowed: true, source: 'store' });
    await here.close();
    await there.close();
  });

  it("another instance's reset of a key over a long limit reaches this one within a second, not at the window's end", async () => {
    const prefix = `${uniqueName('rlrst')}:`;
    const options = { limits: [{ name: 'day', limit: 1, windowMs: 86_400_000 }], deadlineMs: 5_000 };
    const { clock, here, there } = twoInstances(prefix, options);
    expect(await here.check('q')).toMatchObject({ allowed: true });
    expect(await here.check('q')).toMatchObject({ outcome: 'limited', source: 'store' });
    expect(await here.check('q')).toMatchObject({ outcome: 'limited', source: 'local-cache' });
    // Support gives the customer their day back, from another instance.
    await there.reset('q');
    clock.advance(1_000);
    expect(await here.check('q')).toMatchObject({ allowed: true, source: 'store' });
    await here.close();
    await there.close();
  });

  it('without autoBlock, a manual block is honoured by the one-key and the batch script paths', async () => {
    const plain = createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rlblk')}:` }),
      limits: [{ name: 'api', limit: 2, windowMs: 60_000 }],
      roles: {
        pro: [
          { limit: 2, windowMs: 60_000 },
          { limit: 100, windowMs: 3_600_000 },
        ],
      },
      localBlockCache: false,
      deadlineMs: 5_000,
    });
    await plain.block('m', 90_000);
    await plain.block({ key: 'm', role: 'pro' }, 90_000);
    // One key alone: check_single; several keys in one tick: one batched call (check_group on a
    // standalone Redis); a role with two limits: check_group.
    const alone = await plain.check('m');
    const batch = await Promise.all(
      ['m', 'other', { key: 'm', role: 'pro' }].map((input) => plain.check(input)),
    );
    for (const result of [alone, batch[0]!, batch[2]!]) {
      expect(result).toMatchObject({ allowed: false, outcome: 'blocked', source: 'store' });
      expect(result.retryAfterMs).toBeGreaterThan(85_000);
    }
    expect(batch[1]).toMatchObject({ allowed: true, remaining: 1 });
    expect((await plain.peek('m')).outcome).toBe('blocked');
    // Nothing was counted while blocked.
    expect(await plain.unblock('m')).toMatchObject({ allowed: true, remaining: 2 });
    expect(await plain.check('m')).toMatchObject({ allowed: true, remaining: 1 });
    await plain.close();
  });
});

// A private server: SCRIPT FLUSH on the shared one would hit every other suite's scripts.
const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)('the adjust script', () => {
  const { admin, client } = privateRedisConnections(privateRedis.redis);

  /** Calls of EVALSHA (and its NOSCRIPT failures) and EVAL since the last RESETSTAT. */
  async function scriptStats(): Promise<Record<string, number>> {
    const info = await admin.info('commandstats');
    const stats: Record<string, number> = { evalsha: 0, evalshaFailed: 0, eval: 0 };
    for (const match of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+).*?failed_calls=(\d+)/gm)) {
      stats[match[1]!] = Number(match[2]);
      if (match[1] === 'evalsha') stats.evalshaFailed = Number(match[3]);
    }
    return stats;
  }

  it('is one EVALSHA per operation, falling back to EVAL after SCRIPT FLUSH', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [
        { limit: 3, windowMs: 60_000 },
        { algorithm: 'sliding-log', limit: 5, windowMs: 60_000 },
      ],
      deadlineMs: 5_000,
    });
    await limiter.check({ key: 'k', cost: 2 });
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    expect((await limiter.refund('k')).limits.map((limit) => limit.remaining)).toEqual([2, 4]);
    expect(await scriptStats()).toEqual({ evalsha: 1, evalshaFailed: 1, eval: 1 });
    await admin.config('RESETSTAT');
    expect((await limiter.peek('k')).limits.map((limit) => limit.remaining)).toEqual([2, 4]);
    expect(await scriptStats()).toEqual({ evalsha: 1, evalshaFailed: 0, eval: 0 });
    await limiter.close();
  });

  it('an adjustment cut by the deadline (Redis paused) rejects and is not applied when Redis runs it', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [{ limit: 5, windowMs: 86_400_000 }],
      // Neither 'open' nor 'closed' has local state to adjust: the caller learns of the failure.
      failMode: 'closed',
      deadlineMs: 100,
      breaker: { consecutiveFailures: 1_000 },
      localBlockCache: false,
    });
    // The first reply teaches the store the server's clock; until then calls carry no expiry.
    await limiter.check({ key: 'late', cost: 3 });
    await privateRedis.redis!.pause(1_000);
    await expect(limiter.refund('late', 3)).rejects.toBeInstanceOf(TimeoutError);
    // Commands on one connection run in order: once this PING answers, the queued script has run.
    await client.ping();
    expect((await limiter.peek('late')).remaining).toBe(2);
    await limiter.close();
  });

  it("with failMode 'local', adjustments while Redis is paused apply to the local fallback, never to Redis", async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [{ limit: 4, windowMs: 86_400_000 }],
      failMode: 'local',
      deadlineMs: 100,
      breaker: { consecutiveFailures: 1_000 },
      localBlockCache: false,
    });
    // The first reply teaches the store the server's clock; until then calls carry no expiry.
    expect((await limiter.check('abuser')).source).toBe('store');
    // Frozen (SIGSTOP) until the local steps are done, not paused for a fixed 4 s: the calls wait
    // in its socket as under CLIENT PAUSE.
    privateRedis.redis!.freeze();
    try {
      const penalized = await limiter.penalize('abuser', 4);
      expect([penalized.source, penalized.remaining]).toEqual(['fallback', 0]);
      const refused = await limiter.check('abuser');
      expect([refused.source, refused.allowed]).toEqual(['fallback', false]);
      const refunded = await limiter.refund('abuser', 2);
      expect([refunded.source, refunded.remaining]).toEqual(['fallback', 2]);
      const admitted = await limiter.check('abuser');
      expect([admitted.source, admitted.allowed, admitted.remaining]).toEqual(['fallback', true, 1]);
      const blocked = await limiter.block('abuser', 60_000);
      expect([blocked.source, blocked.outcome]).toEqual(['fallback', 'blocked']);
      const stillBlocked = await limiter.check('abuser');
      expect([stillBlocked.source, stillBlocked.outcome]).toEqual(['fallback', 'blocked']);
      const peeked = await limiter.peek('abuser');
      expect([peeked.source, peeked.outcome]).toEqual(['fallback', 'blocked']);
      // Past every call's expiry (its 100 ms deadline and the store's margin) before Redis runs them.
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      privateRedis.redis!.resume();
    }
    // Once Redis runs again (commands on one connection run in order), it has the one check it
    // counted before the pause, and no block: the adjustments stayed local.
    await client.ping();
    const after = await limiter.peek('abuser');
    expect([after.source, after.outcome, after.remaining]).toEqual(['store', 'allowed', 3]);
    await limiter.close();
  });
});

describe.skipIf(skip !== undefined)('reset of a rule with the most limits', () => {
  it('forgets all 16 sliding logs of a key on Redis', async () => {
    const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: `${uniqueName('rl16')}:` }),
      // The last limit is the tightest: a log it kept after a reset would refuse the next check.
      limits: Array.from({ length: 16 }, (_, index) => ({
        name: `log${index}`,
        algorithm: 'sliding-log' as const,
        limit: index === 15 ? 1 : 100,
        windowMs: 60_000,
      })),
      deadlineMs: 5_000,
    });
    try {
      expect((await limiter.check('k')).allowed).toBe(true);
      expect((await limiter.check('k')).allowed).toBe(false);
      await limiter.reset('k');
      expect((await limiter.check('k')).allowed).toBe(true);
    } finally {
      await limiter.close();
      client.disconnect();
    }
  });
});

describe.skipIf(skip !== undefined)('role rules with different limits, one key space', () => {
  it("a caller of one role cannot reach another role's key by a key that spells the rest of its name", async () => {
    const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: `${uniqueName('rlrole')}:` }),
      limits: [{ limit: 100, windowMs: 60_000 }],
      // Role names are the user's; `a:b` is as valid a name as `a`.
      roles: { a: [{ limit: 1, windowMs: 60_000 }], 'a:b': [{ limit: 1, windowMs: 60_000 }] },
      deadlineMs: 5_000,
    });
    try {
      // The key is the client's (an API key, a user id): `b:victim` under role `a`.
      expect((await limiter.check({ key: 'b:victim', role: 'a' })).allowed).toBe(true);
      expect((await limiter.check({ key: 'victim', role: 'a:b' })).allowed).toBe(true);
    } finally {
      await limiter.close();
      client.disconnect();
    }
  });
});
