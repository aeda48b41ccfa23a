import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type RateLimiter,
  type RateLimitResult,
  RedisStore,
  recommendedRedisOptions,
} from '../../src/index.js';

let redis: PrivateRedis | undefined;
let skip: string | undefined;
try {
  redis = await startPrivateRedis();
} catch (error) {
  skip = `skipped: no redis-server binary to start a private Redis (${(error as Error).message})`;
  console.log(skip);
}

const limit = 10_000;
const limits = [{ limit, windowMs: 600_000 }];

describe.skipIf(skip !== undefined)('checks that reach Redis after their deadline', () => {
  const clients: Redis[] = [];
  let prefix = 0;

  function connect(): Redis {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, lazyConnect: true });
    client.on('error', () => {});
    clients.push(client);
    return client;
  }

  /** A limiter whose breaker never opens, so every check during the pause is written to Redis. */
  function limiterOn(client: Redis, deadlineMs: number): { limiter: RateLimiter; prefix: string } {
    prefix += 1;
    const keyPrefix = `expired-${prefix}:`;
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: keyPrefix }),
      limits,
      failMode: 'open',
      deadlineMs,
      breaker: { consecutiveFailures: 1_000_000 },
      localBlockCache: false,
    });
    return { limiter, prefix: keyPrefix };
  }

  /**
   * Points counted on the limiter's `key` (store key `rl:default:<key>`: the limiter's default
   * prefix and rule), read with a zero-cost check by a store of its own.
   */
  async function counted(keyPrefix: string, key: string): Promise<number> {
    const store = new RedisStore({ client: clients[0]!, prefix: keyPrefix });
    const policy = { name: 'default', algorithm: 'fixed-window' as const, ...limits[0]! };
    const [outcome] = await store.consume(`rl:default:${key}`, [policy], [0], undefined);
    return limit - outcome!.decisions[0]!.remaining;
  }

  beforeAll(async () => {
    await connect().connect();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('a check answered by the fail mode while Redis was paused is not counted once Redis runs it', async () => {
    const client = connect();
    await client.connect();
    const { limiter, prefix: keyPrefix } = limiterOn(client, 25);
    // The first reply teaches the store Redis's clock; before it, checks carry no expiry.
    expect((await limiter.check('user')).source).toBe('store');

    await redis!.pause(1_500);
    const during: RateLimitResult[] = [];
    // Rounds of concurrent checks: one script call per round, each with several requests.
    for (let round = 0; round < 15; round += 1)
      during.push(...(await Promise.all(Array.from({ length: 10 }, () => limiter.check('user')))));
    expect(during.every((result) => result.source === 'fallback' && result.allowed)).toBe(true);

    // Commands on one connection run in order: once this PING answers, every queued script has run.
    await client.ping();
    expect(await counted(keyPrefix, 'user')).toBe(1);

    // Back to normal: every check counts again, exactly once.
    for (let index = 0; index < 5; index += 1) expect((await limiter.check('user')).source).toBe('store');
    const burst = await Promise.all(Array.from({ length: 20 }, () => limiter.check('user')));
    expect(burst.every((result) => result.source === 'store')).toBe(true);
    expect(await counted(keyPrefix, 'user')).toBe(1 + 5 + 20);
    await limiter.close();
  });

  it('a check that Redis answers late but within the deadline counts and is answered by the store', async () => {
    const client = connect();
    await client.connect();
    const { limiter, prefix: keyPrefix } = limiterOn(client, 10_000);
    expect((await limiter.check('slow')).source).toBe('store');

    await redis!.pause(500);
    const late = await Promise.all(Array.from({ length: 10 }, () => limiter.check('slow')));
    expect(late.every((result) => result.source === 'store' && result.allowed)).toBe(true);
    expect(late.map((result) => result.remaining).sort((a, b) => b - a)[0]).toBe(limit - 2);
    expect(await counted(keyPrefix, 'slow')).toBe(11);
    await limiter.close();
  });
});
