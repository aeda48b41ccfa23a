import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, RedisStore, recommendedRedisOptions } from '../../src/index.js';

// A private server: SCRIPT FLUSH on the shared one would hit every other suite's scripts.
const { redis, skip } = await startPrivateRedisOrSkip();

/** Calls and NOSCRIPT-style failures of EVALSHA and EVAL since the last RESETSTAT. */
async function scriptStats(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  const stats: Record<string, number> = { evalsha: 0, evalshaFailed: 0, eval: 0 };
  for (const match of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+).*?failed_calls=(\d+)/gm)) {
    stats[match[1]!] = Number(match[2]);
    if (match[1] === 'evalsha') stats.evalshaFailed = Number(match[3]);
  }
  return stats;
}

describe.skipIf(skip !== undefined)('EVALSHA falls back to EVAL on NOSCRIPT', () => {
  let admin: Redis;
  let client: Redis;
  beforeAll(async () => {
    admin = new Redis(redis!.url);
    client = new Redis(redis!.url, { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(async () => {
    admin.disconnect();
    client.disconnect();
    await redis?.stop();
  });

  it('a check after SCRIPT FLUSH (a restart or failover) still counts, and the script is cached again', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [{ limit: 2, windowMs: 60_000 }],
      // This test is about the script cache, not the deadline: a slow machine must not cut it.
      deadlineMs: 5_000,
      localBlockCache: false,
    });
    expect(await limiter.check('k')).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    expect(await limiter.check('k')).toMatchObject({ allowed: true, remaining: 0, source: 'store' });
    // One EVALSHA refused with NOSCRIPT, one EVAL that ran (and cached) the script.
    expect(await scriptStats(admin)).toEqual({ evalsha: 1, evalshaFailed: 1, eval: 1 });
    await admin.config('RESETSTAT');
    expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'store' });
    expect(await scriptStats(admin)).toEqual({ evalsha: 1, evalshaFailed: 0, eval: 0 });
    await limiter.close();
  });
});
