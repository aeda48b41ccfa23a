import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput, MemoryStore } from '../src/index.js';

// A bucket's state survives a change of its `limit` (the store key's fingerprint leaves `limit`
// out, README "Several limiters"), so a reload with new limits meets a bucket filled under the
// old ones. Peers got this wrong both ways: a GCRA whose limit was raised kept refusing on the old
// schedule, its stored arrival time being in the old rate's units (letsencrypt/boulder#8785), and
// bottleneck's updateSettings left a reservoir that no longer refilled (SGrondin/bottleneck#185).
// Ours keeps a bucket's level in requests (× windowMs), which the new rate drains or fills, and
// caps it at the new capacity.

const start = 1_700_000_000_000;

/** Checks `key` under `limit` at the clock's time, with a limiter made for that one check. */
async function checkUnder(store: MemoryStore, clock: ManualClock, limit: LimitInput, count = 1) {
  const limiter = createRateLimiter({ store, limits: [limit], clock });
  const results = [];
  for (let index = 0; index < count; index += 1) results.push(await limiter.check('k'));
  await limiter.close();
  return results;
}

describe('a bucket filled under one limit, checked under another', () => {
  it('leaky bucket: a raised rate drains what the old one left at the new rate (not on the old schedule)', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const old: LimitInput = { algorithm: 'leaky-bucket', limit: 10, windowMs: 60_000, burst: 10 };
    const filled = await checkUnder(store, clock, old, 11);
    expect(filled.map((result) => result.allowed)).toEqual([...Array(10).fill(true), false]);
    expect(filled[10]!.retryAfterMs).toBe(6_000);
    // The same burst, ten times the rate: one request leaks every 600 ms.
    clock.advance(600);
    const [raised] = await checkUnder(store, clock, { ...old, limit: 100 });
    expect(raised!.allowed).toBe(true);
    const [next] = await checkUnder(store, clock, { ...old, limit: 100 });
    expect([next!.allowed, next!.retryAfterMs]).toEqual([false, 600]);
  });

  it('token bucket: a lowered capacity caps what the old one held', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const old: LimitInput = { algorithm: 'token-bucket', limit: 100, windowMs: 60_000 };
    expect((await checkUnder(store, clock, old))[0]!.remaining).toBe(99);
    const lowered = await checkUnder(store, clock, { ...old, limit: 10 }, 11);
    expect(lowered.map((result) => result.allowed)).toEqual([...Array(10).fill(true), false]);
    expect(lowered[10]!.retryAfterMs).toBe(6_000);
  });

  it('token bucket: a raised rate refills what the old one left at the new rate', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const old: LimitInput = { algorithm: 'token-bucket', limit: 5, windowMs: 60_000, burst: 5 };
    const spent = await checkUnder(store, clock, old, 6);
    expect(spent[5]!.retryAfterMs).toBe(12_000);
    clock.advance(1_200);
    const [raised] = await checkUnder(store, clock, { ...old, limit: 50 });
    expect(raised!.allowed).toBe(true);
  });
});
