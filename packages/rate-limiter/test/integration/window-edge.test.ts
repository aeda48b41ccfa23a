import { setTimeout as sleep } from 'node:timers/promises';
import {
  awayFromWindowEdge,
  generousDeadlineMs,
  isReachable,
  redisTimeOf,
  serviceUrl,
  uniqueName,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

// Why the tests that expect a fixed window's refusal on Redis start with `awayFromWindowEdge`:
// fixed windows are aligned to multiples of windowMs by Redis TIME, so two calls that straddle a
// boundary count in two windows and the second is admitted, by design. A short window makes the
// boundary come on demand.
describe.skipIf(skip !== undefined)('a fixed window on Redis near its boundary', () => {
  const windowMs = 1_000;
  let client: Redis;
  let limiter: RateLimiter;
  const prefix = `${uniqueName('rledge')}:`;

  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs }],
      store: new RedisStore({ client, prefix }),
      deadlineMs: generousDeadlineMs,
    });
  });
  afterAll(async () => {
    await limiter.close();
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  /** Waits until `beforeMs` are left of the window by Redis TIME. */
  const closeToEdge = async (beforeMs: number) => {
    const now = await redisTimeOf(client)();
    await sleep(Math.max(0, windowMs - (now % windowMs) - beforeMs));
  };

  it('admits a second call after the boundary (the old form of the tests: flaky by design)', async () => {
    await closeToEdge(40);
    const first = await limiter.check('straddle');
    expect(first.allowed).toBe(true);
    // Its window ends within 40 ms, unless a loaded machine delayed the call past the boundary.
    await sleep((first.resetMs ?? windowMs) + 5);
    expect((await limiter.check('straddle')).allowed).toBe(true);
  });

  it('refuses it when the test first moves away from the edge (the new form)', async () => {
    await closeToEdge(40);
    const leftMs = await awayFromWindowEdge(windowMs, 300, redisTimeOf(client));
    expect(leftMs).toBeGreaterThanOrEqual(300);
    expect((await limiter.check('away')).allowed).toBe(true);
    await sleep(50);
    expect((await limiter.check('away')).allowed).toBe(false);
  });
});
