import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { counting, redisUp, sharedRedisCaches } from './helpers.js';

describe.skipIf(!redisUp)('sliding expiry on a real Redis', () => {
  const { prefix, redis, open } = sharedRedisCaches('cm_sliding');

  it('an L2 hit extends the Redis copy in the same call: its timings and its physical TTL', async () => {
    const clock = new ManualClock(Date.now());
    const window = 60_000;
    const writer = await open({ clock, slidingTtlMs: window, ttlMs: 10 * window });
    const { client, calls } = counting(redis!, [
      'callBuffer',
      'getBuffer',
      'mgetBuffer',
      'pipeline',
      'pexpire',
    ]);
    const reader = await open({ clock, slidingTtlMs: window, redis: client });
    await writer.set('session', { user: 7 });
    const key = `${prefix}v:session`;
    await redis!.pexpire(key, 5_000); // as if most of its physical life had gone by
    clock.advance(window / 2);
    calls.clear();
    expect(await reader.get('session')).toEqual({ user: 7 });
    expect([...calls]).toEqual([['callBuffer', 1]]); // one round trip (EVALSHA): the read is the extension
    const stored = (await redis!.getBuffer(key))!;
    expect(stored.readDoubleBE(1)).toBe(clock.now() + window); // the frame's expiresAt moved
    expect(await redis!.pttl(key)).toBeGreaterThan(window - 5_000);
  });

  it('never extends past the ttl bound, and a stale copy is left as it is', async () => {
    const clock = new ManualClock(Date.now());
    const writer = await open({ clock, slidingTtlMs: 10_000, ttlMs: 15_000 });
    const reader = await open({ clock, slidingTtlMs: 10_000 });
    await writer.set('bounded', 'v');
    const key = `${prefix}v:bounded`;
    const bound = clock.now() + 15_000;
    clock.advance(9_000);
    expect(await reader.get('bounded')).toBe('v');
    expect((await redis!.getBuffer(key))!.readDoubleBE(1)).toBe(bound);
    expect(await redis!.pttl(key)).toBeLessThanOrEqual(6_000);
    clock.advance(7_000); // past the bound: a miss everywhere, the bytes untouched
    const before = await redis!.getBuffer(key);
    expect(await (await open({ clock, slidingTtlMs: 10_000 })).get('bounded')).toBeUndefined();
    expect(await redis!.getBuffer(key)).toEqual(before);
  });
});
