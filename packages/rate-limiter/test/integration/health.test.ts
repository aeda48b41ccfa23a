import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type FailMode, type HealthStatus, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// A private Redis that this file kills and restarts (never the shared one).
let redis: PrivateRedis | undefined;
let skip: string | undefined;
try {
  redis = await startPrivateRedis();
} catch (error) {
  skip = `skipped: no redis-server binary to start a private Redis (${(error as Error).message})`;
  console.log(skip);
}
const clients: Redis[] = [];
const limiters: RateLimiter[] = [];

afterAll(async () => {
  for (const limiter of limiters) await limiter.close();
  for (const client of clients) client.disconnect();
  await redis?.stop();
});

function limiterOn(failMode: FailMode): RateLimiter {
  const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
  client.on('error', () => {});
  clients.push(client);
  const limiter = createRateLimiter({
    store: new RedisStore({ client }),
    prefix: `health-${failMode}`,
    limits: [{ limit: 1_000, windowMs: 60_000 }],
    failMode,
    deadlineMs: 200,
    breaker: { halfOpenAfterMs: 200, consecutiveFailures: 2 },
  });
  limiters.push(limiter);
  return limiter;
}

/** Checks (the traffic that tells the limiter how its store is) until health() says `status`. */
async function checkUntil(limiter: RateLimiter, status: HealthStatus): Promise<void> {
  const giveUp = Date.now() + 20_000;
  while (limiter.health().status !== status) {
    if (Date.now() > giveUp) throw new Error(`health stayed ${limiter.health().status}, wanted ${status}`);
    await limiter.check('k');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.skipIf(skip !== undefined)('RateLimiter.health() over a Redis that dies and comes back', () => {
  it('goes degraded (local, open) or down (closed) with the store error, and up once Redis answers', async () => {
    const local = limiterOn('local');
    const open = limiterOn('open');
    const closed = limiterOn('closed');
    for (const limiter of [local, open, closed]) {
      await limiter.check('k');
      expect(limiter.health()).toMatchObject({
        status: 'up',
        details: { store: 'redis', breaker: 'closed' },
      });
    }

    await redis!.kill();
    await checkUntil(local, 'degraded');
    await checkUntil(open, 'degraded');
    await checkUntil(closed, 'down');
    const down = closed.health();
    expect(down.details).toMatchObject({ failMode: 'closed', fallback: true });
    expect(down.cause).toBeInstanceOf(Error);
    expect(local.health().details).toMatchObject({ failMode: 'local', fallback: true });
    // While bypassed the fail mode answers: local still admits by its share, closed refuses.
    expect((await local.check('k')).allowed).toBe(true);
    expect((await closed.check('k')).allowed).toBe(false);

    await redis!.restart();
    for (const limiter of [local, open, closed]) {
      await checkUntil(limiter, 'up');
      expect(limiter.health()).toMatchObject({ details: { breaker: 'closed', fallback: false } });
      expect(limiter.health()).not.toHaveProperty('cause');
    }
  });
});
