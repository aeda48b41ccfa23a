import { awayFromWindowEdge, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CostExceedsCapacityError,
  createRateLimiter,
  type FailMode,
  type RateLimiter,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// What a programmatic caller reads while the store is really gone (a private server, stopped):
// under 'open' and 'closed' nothing was counted and nothing is known of the key's quota, so the
// result states none (no limits, no remaining, no reset), rather than a full quota reset at t=0
// that a caller would log, show or act on. 'local' counts in a real limiter and keeps its numbers.

const { redis, skip } = await startPrivateRedisOrSkip();

const clients: Redis[] = [];
const limiters = new Map<FailMode, RateLimiter>();

describe.skipIf(skip !== undefined)('a fail-mode result while Redis is stopped', () => {
  beforeAll(async () => {
    for (const failMode of ['open', 'closed', 'local'] as const) {
      const client = new Redis(redis!.url, { ...recommendedRedisOptions, retryStrategy: () => 100 });
      client.on('error', () => {});
      clients.push(client);
      limiters.set(
        failMode,
        createRateLimiter({
          store: new RedisStore({ client }),
          limits: [
            { name: 'burst', limit: 10, windowMs: 1_000 },
            { name: 'daily', limit: 1_000, windowMs: 86_400_000 },
          ],
          prefix: `failresult-${failMode}`,
          failMode,
          expectedInstances: 2,
          deadlineMs: 1_000,
          breaker: { halfOpenAfterMs: 60_000, consecutiveFailures: 3 },
        }),
      );
    }
    // Healthy first: the store's numbers are in the results.
    for (const limiter of limiters.values()) {
      const healthy = await limiter.check('k');
      expect(healthy).toMatchObject({ source: 'store', remaining: 9 });
      expect(healthy.limits.map((limit) => limit.name)).toEqual(['burst', 'daily']);
    }
    await redis!.stop();
  });

  afterAll(async () => {
    for (const limiter of limiters.values()) await limiter.close();
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  /** Before and after the breaker opens (3 failures): the same answer. */
  async function resultsOf(failMode: FailMode, input: Parameters<RateLimiter['check']>[0] = 'k') {
    const results: RateLimitResult[] = [];
    for (let attempt = 0; attempt < 5; attempt += 1) results.push(await limiters.get(failMode)!.check(input));
    return results;
  }

  it("'open' admits and states no quota: no limits, remaining and resetMs undefined", async () => {
    for (const result of await resultsOf('open')) {
      expect(result).toEqual({
        allowed: true,
        outcome: 'allowed',
        key: 'k',
        source: 'fail-mode',
        limits: [],
        remaining: undefined,
        resetMs: undefined,
        retryAfterMs: 0,
        delayMs: 0,
      });
      // JSON (a log line) leaves the unknown numbers out rather than writing a made-up 0 or quota.
      expect(JSON.parse(JSON.stringify(result))).not.toHaveProperty('remaining');
    }
  });

  it("'closed' refuses with its retry advice only", async () => {
    for (const result of await resultsOf('closed'))
      expect(result).toEqual({
        allowed: false,
        outcome: 'limited',
        key: 'k',
        source: 'fail-mode',
        limits: [],
        remaining: undefined,
        resetMs: undefined,
        retryAfterMs: 1_000,
        delayMs: 0,
      });
  });

  it('a cost no limit can admit is still refused as never, naming only the limits it is above', async () => {
    for (const failMode of ['open', 'closed'] as const) {
      const [result] = await resultsOf(failMode, { key: 'k', cost: 50 });
      expect(result).toMatchObject({
        allowed: false,
        outcome: 'exceeds-capacity',
        source: 'fail-mode',
        remaining: undefined,
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
      // Only what the policy says: the limit it is above, never, and no made-up state.
      expect(result!.limits).toEqual([
        {
          name: 'burst',
          windowMs: 1_000,
          allowed: false,
          limit: 10,
          remaining: 0,
          resetMs: 0,
          nextMs: 0,
          retryAfterMs: Number.POSITIVE_INFINITY,
          delayMs: 0,
        },
      ]);
      const caught = await limiters
        .get(failMode)!
        .consume({ key: 'k', cost: 50 })
        .catch((error: unknown) => error);
      expect(caught).toBeInstanceOf(CostExceedsCapacityError);
      expect((caught as CostExceedsCapacityError).limits).toEqual(['burst']);
    }
  });

  it("'local' keeps the numbers its local limiter counted (each instance's share: 10 ÷ 2 = 5)", async () => {
    // The local limiter's 'burst' is a fixed window of one second on this process's clock: the five
    // checks count in one window only if none starts near its end.
    await awayFromWindowEdge(1_000, 600);
    const results = await resultsOf('local');
    expect(results.map((result) => result.source)).toEqual(Array(5).fill('fallback'));
    expect(results.map((result) => result.remaining)).toEqual([4, 3, 2, 1, 0]);
    expect(results[0]!.limits.map((limit) => limit.limit)).toEqual([5, 500]);
    expect(results.every((result) => typeof result.resetMs === 'number' && result.resetMs > 0)).toBe(true);
  });
});

describe("'local' fallback share of a small limit (Redis unreachable)", () => {
  it('is at least 1 per instance, so instances together may admit more than a limit below their number; a cost above the share but within the limit waits 1 s', async () => {
    // Nothing listens on port 1: every check is answered by the fallback.
    const client = new Redis('redis://127.0.0.1:1', recommendedRedisOptions);
    client.on('error', () => {});
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [{ name: 'login', limit: 3, windowMs: 900_000 }],
      failMode: 'local',
      expectedInstances: 4,
      deadlineMs: 100,
    });
    try {
      const first = await limiter.check('user:1');
      expect([first.source, first.allowed, first.limits[0]!.limit]).toEqual(['fallback', true, 1]);
      const second = await limiter.check('user:1');
      expect([second.allowed, second.outcome]).toEqual([false, 'limited']);
      const costly = await limiter.check({ key: 'user:2', cost: 2 });
      expect([costly.source, costly.outcome, costly.retryAfterMs]).toEqual(['fallback', 'limited', 1_000]);
    } finally {
      await limiter.close();
      client.disconnect();
    }
  });
});
