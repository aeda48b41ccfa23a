import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AlgorithmName, createRateLimiter } from '../../src/index.js';
import { algorithmNames } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { expressApp, fastifyApp } from '../http-apps.js';

// RateLimit's t on Redis, over HTTP (the memory twin, with an injected clock, is
// test/middleware-next-quota.test.ts): a client that sees r=0 and waits t seconds is admitted, for
// every algorithm's Lua script, through both middlewares. Redis's clock is real, so the test
// waits: t is at most 2 s with these windows, and the cases run side by side.

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

/** r and t of the single `RateLimit` list member. */
function rateLimit(field: string | null): { r: number; t: number } {
  const match = /^"[^"]+";r=(\d+);t=(\d+)$/.exec(field ?? '');
  if (match === null) throw new Error(`unexpected RateLimit ${field}`);
  return { r: Number(match[1]), t: Number(match[2]) };
}

describe.skipIf(skip !== undefined)('RateLimit t on Redis, over HTTP', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(async () => {
    await client.quit();
  });

  it('a client that waits t seconds after r=0 is admitted, for every algorithm, on Express and Fastify', async () => {
    const cases = algorithmNames.flatMap((algorithm) =>
      (['express', 'fastify'] as const).map((framework) => ({ algorithm, framework })),
    );
    const outcomes = await Promise.all(
      cases.map(async ({ algorithm, framework }: { algorithm: AlgorithmName; framework: string }) => {
        const prefix = `${uniqueName('rl-next-http')}:`;
        const limiter = createRateLimiter({
          store: new RedisStore({ client, prefix }),
          limits: [{ algorithm, limit: 2, windowMs: 2_000 }],
          // About what Redis answers, not the deadline: a slow machine must not cut it.
          deadlineMs: 5_000,
          // Each check asks Redis: the refusal below is the script's, not a cached one.
          localBlockCache: false,
        });
        const app = framework === 'express' ? await expressApp(limiter) : await fastifyApp(limiter);
        try {
          let seen = { r: 2, t: 0 };
          let requests = 0;
          while (seen.r > 0 && requests < 5) {
            const response = await fetch(`${app.base}/`);
            expect(response.status).toBe(200);
            seen = rateLimit(response.headers.get('ratelimit'));
            requests += 1;
          }
          expect(seen.r).toBe(0);
          expect(seen.t).toBeGreaterThan(0);
          // At most the window (2 s) plus, for the sliding window, the part of the one before.
          expect(seen.t).toBeLessThanOrEqual(4);
          // A bucket of 2 per 2 s gets a point back within a second (its whole quota takes two).
          if (algorithm === 'token-bucket' || algorithm === 'leaky-bucket') expect(seen.t).toBe(1);
          await new Promise((resolve) => setTimeout(resolve, seen.t * 1_000));
          const after = await fetch(`${app.base}/`);
          return `${algorithm} ${framework}: ${after.status} after t=${seen.t}`;
        } finally {
          await app.close();
          await limiter.close();
          const left = await client.keys(`${prefix}*`);
          if (left.length > 0) await client.del(...left);
        }
      }),
    );
    expect(outcomes).toEqual(
      cases.map(({ algorithm, framework }) => expect.stringMatching(`^${algorithm} ${framework}: 200 after`)),
    );
  });
});
