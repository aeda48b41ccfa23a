import { ManualClock } from '@noa/core';
import { awayFromWindowEdge, startPrivateRedisOrSkip } from '@noa/testkit';
import { beforeEach, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { blockRecheckMs } from '../../src/local-block-cache.js';
import { RedisStore } from '../../src/redis.js';
import { privateRedisConnections } from './redis-fixture.js';
import { recordsOf, scriptCalls } from './redis-stats.js';

const { redis, skip } = await startPrivateRedisOrSkip();
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 3 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 3_000);
});

describe.skipIf(skip !== undefined)('hot keys on Redis', () => {
  const { admin, client } = privateRedisConnections(redis);

  it('batches concurrent checks of one key, then refuses it locally until its retry time', async () => {
    const store = new RedisStore({ client });
    const recorded = recordsOf(store);
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 10, windowMs: 60_000 }],
      deadlineMs: 2_000,
    });
    await recorded();
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

  it('rechecks a remembered refusal once when its second is up, however many ticks check the key meanwhile', async () => {
    // Only the limiter's clock is manual (the cache's); Redis decides by its own TIME.
    const clock = new ManualClock(1_700_000_000_000);
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'recheck:' }),
      limits: [{ limit: 1, windowMs: 86_400_000 }],
      deadlineMs: 5_000,
      clock,
    });
    expect((await limiter.check('daily')).allowed).toBe(true);
    expect((await limiter.check('daily')).source).toBe('store');
    clock.advance(blockRecheckMs + 1);
    await admin.config('RESETSTAT');
    // The recheck waits behind the pause, as a slow round trip would, while a hot key's checks
    // keep arriving, each request in a tick of its own.
    await admin.call('CLIENT', 'PAUSE', '300', 'WRITE');
    const results = [];
    for (let tick = 0; tick < 20; tick += 1) {
      results.push(limiter.check('daily'));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const answered = await Promise.all(results);
    expect(answered.every((result) => !result.allowed)).toBe(true);
    expect(answered[0]!.source).toBe('store');
    expect(answered.slice(1).every((result) => result.source === 'local-cache')).toBe(true);
    expect(await scriptCalls(admin)).toBe(1);
    await limiter.close();
  });
});
