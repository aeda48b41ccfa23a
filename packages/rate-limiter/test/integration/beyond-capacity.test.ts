import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import {
  AcquireError,
  algorithmNames,
  CostExceedsCapacityError,
  costExceedsCapacityType,
  createRateLimiter,
  type RateLimiter,
} from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

// The same answers as on the memory store (test/beyond-capacity.test.ts), from the Lua scripts:
// a cost above a limit's capacity is refused as 'exceeds-capacity', never with "retry in 0 s",
// and counts nothing in Redis.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

describe.skipIf(skip !== undefined).each(targets)('a cost above the capacity on $name', (target) => {
  const connection = targetConnection(target);
  const limiters: RateLimiter[] = [];
  const limiterOf = (algorithm: (typeof algorithmNames)[number], autoBlock = false) => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rlcap')}:` }),
      limits: [
        { name: 'burst', algorithm, limit: 5, windowMs: 60_000 },
        ...(autoBlock ? [] : [{ name: 'daily', limit: 1_000, windowMs: 86_400_000 }]),
      ],
      autoBlock: autoBlock ? { violations: 2, withinMs: 60_000, blockMs: 60_000 } : undefined,
      // These tests are about what Redis answers, not the deadline: a slow machine must not cut it.
      deadlineMs: 5_000,
    });
    limiters.push(limiter);
    return limiter;
  };
  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
  });

  for (const algorithm of algorithmNames) {
    it(`${algorithm}: check, consume and acquire say never; nothing is counted`, async () => {
      const limiter = limiterOf(algorithm);
      // The cost of 5 and the refusal after it in one minute window (aligned by Redis TIME: this host's).
      await awayFromWindowEdge(60_000, 3_000);
      const result = await limiter.check({ key: 'k', cost: 10 });
      expect(result).toMatchObject({
        allowed: false,
        outcome: 'exceeds-capacity',
        retryAfterMs: Number.POSITIVE_INFINITY,
        remaining: 5,
        source: 'store',
      });
      expect(result.limits.map(({ allowed, retryAfterMs }) => ({ allowed, retryAfterMs }))).toEqual([
        { allowed: false, retryAfterMs: Number.POSITIVE_INFINITY },
        { allowed: true, retryAfterMs: 0 },
      ]);
      await expect(limiter.consume({ key: 'k', cost: 6 })).rejects.toBeInstanceOf(CostExceedsCapacityError);
      const waited = await limiter.acquire({ key: 'k', cost: 6 }).catch((error: unknown) => error);
      expect(waited).toBeInstanceOf(AcquireError);
      expect(waited).toMatchObject({ reason: 'exceeds-capacity', retryAfterMs: Number.POSITIVE_INFINITY });
      expect(await limiter.check({ key: 'k', cost: 5 })).toMatchObject({ allowed: true, remaining: 0 });
      // Exhausted, the local block cache remembers the key's refusal: still never, not its reset.
      expect(await limiter.check({ key: 'k', cost: 1 })).toMatchObject({ outcome: 'limited' });
      expect(await limiter.check({ key: 'k', cost: 7 })).toMatchObject({
        outcome: 'exceeds-capacity',
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
    });
  }

  it('records no violation and is not remembered by the local block cache', async () => {
    const limiter = limiterOf('token-bucket', true);
    for (let index = 0; index < 4; index += 1)
      expect(await limiter.check({ key: 'v', cost: 6 })).toMatchObject({ outcome: 'exceeds-capacity' });
    expect(await limiter.check({ key: 'v', cost: 1 })).toMatchObject({ allowed: true, source: 'store' });
  });

  it('Express over HTTP: 413 problem+json without Retry-After, with the RateLimit fields', async () => {
    const limiter = limiterOf('sliding-log');
    const app = express();
    app.get(
      '/batch',
      expressRateLimit({ limiter, cost: (facts) => Number(facts.headers['x-cost'] ?? 1) }),
      (_req, res) => {
        res.send('ok');
      },
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const response = await fetch(`${base}/batch`, { headers: { 'x-cost': '10' } });
      expect(response.status).toBe(413);
      expect(response.headers.get('retry-after')).toBeNull();
      expect(response.headers.get('ratelimit')).toBe('"burst";r=5;t=0, "daily";r=1000;t=0');
      expect(await response.json()).toMatchObject({
        type: costExceedsCapacityType,
        'violated-policies': ['burst'],
      });
      expect((await fetch(`${base}/batch`, { headers: { 'x-cost': '5' } })).status).toBe(200);
    } finally {
      server.close();
    }
  });
});

describe.skipIf(skip !== undefined)('the largest buckets on Redis', () => {
  const connection = targetConnection(targets[0]!);
  it('decide as the memory store does (their scaled state stays below 2^53)', async () => {
    // ~35 years: nothing refills between the two stores' checks (Redis and this process keep
    // their own time), and points × windowMs still comes to just below 2^53.
    const windowMs = 2 ** 40;
    const limit = Math.floor(Number.MAX_SAFE_INTEGER / windowMs);
    for (const algorithm of ['token-bucket', 'leaky-bucket'] as const) {
      const limits = [{ algorithm, limit, windowMs }];
      const onRedis = createRateLimiter({
        store: new RedisStore({ client: connection.client, prefix: `${uniqueName('rlbig')}:` }),
        limits,
        deadlineMs: 5_000,
      });
      const inMemory = createRateLimiter({ limits });
      const costs = [Math.floor(limit / 2), 1, limit];
      for (const cost of costs) {
        const [redis, memory] = [
          await onRedis.check({ key: 'k', cost }),
          await inMemory.check({ key: 'k', cost }),
        ];
        expect([redis.allowed, redis.remaining], `${algorithm} cost ${cost}`).toEqual([
          memory.allowed,
          memory.remaining,
        ]);
      }
      await onRedis.close();
      await inMemory.close();
    }
  });
});
