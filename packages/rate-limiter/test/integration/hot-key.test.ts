import { startPrivateRedisOrSkip } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, RedisStore } from '../../src/index.js';
import { privateRedisConnections } from './redis-fixture.js';
import { scriptCalls } from './redis-stats.js';

const { redis, skip } = await startPrivateRedisOrSkip();

describe.skipIf(skip !== undefined)('hot keys on Redis', () => {
  const { admin, client } = privateRedisConnections(redis);

  it('batches concurrent checks of one key, then refuses it locally until its retry time', async () => {
    const limiter = createRateLimiter({
      store: new RedisStore({ client }),
      limits: [{ limit: 10, windowMs: 60_000 }],
      deadlineMs: 2_000,
    });
    await admin.config('RESETSTAT');
    const first = await Promise.all(Array.from({ length: 200 }, () => limiter.check('hot')));
    expect(first.filter((result) => result.allowed)).toHaveLength(10);
    expect(first.every((result) => result.source === 'store')).toBe(true);
    // 200 checks in one tick: one script call (two if the first hit NOSCRIPT).
    expect(await scriptCalls(admin)).toBeLessThanOrEqual(2);

    await admin.config('RESETSTAT');
    const later = await Promise.all(Array.from({ length: 500 }, () => limiter.check('hot')));
    expect(later.every((result) => !result.allowed && result.source === 'local-cache')).toBe(true);
    expect(later.every((result) => result.retryAfterMs > 0 && result.retryAfterMs <= 60_000)).toBe(true);
    expect(await scriptCalls(admin)).toBe(0);
    // Another key is not affected.
    expect((await limiter.check('cold')).allowed).toBe(true);
    await limiter.close();
  });
});
