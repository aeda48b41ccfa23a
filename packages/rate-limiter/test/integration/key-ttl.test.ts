import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput, type QuotaResult } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// A key's Redis TTL is the time its state still matters, as the result states it: the time until
// the quota is full again (`resetMs`, the legacy X-RateLimit-Reset), or a block's end. Shorter,
// Redis would forget a spent quota early and admit more than the limit (a sliding window's previous
// window, a bucket that refills slower than its window, a leaky bucket's queue ahead of now);
// longer, the key would outlive what the headers say (@upstash/ratelimit#59: the `reset` returned
// did not match the key's TTL). Checked on every algorithm after checks, a penalty and a block.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const shapes: { label: string; limit: LimitInput }[] = [
  { label: 'fixed window', limit: { algorithm: 'fixed-window', limit: 5, windowMs: 10_000 } },
  { label: 'sliding window', limit: { algorithm: 'sliding-window', limit: 5, windowMs: 10_000 } },
  { label: 'sliding log', limit: { algorithm: 'sliding-log', limit: 5, windowMs: 10_000 } },
  {
    label: 'token bucket, burst above the limit',
    limit: { algorithm: 'token-bucket', limit: 5, windowMs: 10_000, burst: 50 },
  },
  {
    label: 'token bucket, burst below the limit',
    limit: { algorithm: 'token-bucket', limit: 50, windowMs: 10_000, burst: 5 },
  },
  { label: 'leaky bucket', limit: { algorithm: 'leaky-bucket', limit: 5, windowMs: 10_000, burst: 20 } },
  {
    label: 'leaky bucket, queueing',
    limit: { algorithm: 'leaky-bucket', limit: 1, windowMs: 10_000, queueMaxDelayMs: 100_000 },
  },
];

/** How long the key must live after `result`: until the quota is full again, or the block ends. */
const stateLifetimeMs = (result: QuotaResult): number =>
  result.outcome === 'blocked' ? Math.max(result.resetMs, result.retryAfterMs) : result.resetMs;

describe.skipIf(skip !== undefined)('a Redis key lives as long as its state matters, no longer', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(() => client.disconnect());

  it.each(shapes)('$label', async ({ limit }) => {
    const prefix = `${uniqueName('rl-ttl')}:`;
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [limit],
      deadlineMs: 2_000,
    });
    try {
      const operations: [string, () => Promise<QuotaResult>][] = [
        [
          'checks',
          async () => {
            let last = await limiter.check('checks');
            for (let index = 1; index < 12; index += 1) last = await limiter.check('checks');
            return last as QuotaResult;
          },
        ],
        ['penalize', () => limiter.penalize('penalize', 3)],
        ['block', () => limiter.block('block', 60_000)],
      ];
      for (const [key, operation] of operations) {
        const result = await operation();
        // The refusals after the limit may be the hot-key cache's, which states the store's times.
        expect(['store', 'local-cache']).toContain(result.source);
        const keys = await client.keys(`${prefix}*${key}*`);
        expect(keys, key).toHaveLength(1);
        const ttl = await client.pttl(keys[0]!);
        const lifetime = stateLifetimeMs(result);
        expect(lifetime, key).toBeGreaterThan(0);
        // The PTTL is read a little after the result was computed (a few ms on a loaded machine).
        expect(ttl, key).toBeGreaterThan(lifetime - 250);
        expect(ttl, key).toBeLessThanOrEqual(lifetime + 1);
      }
    } finally {
      await limiter.close();
    }
  });
});
