import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';

describe('l1.mode clone: no caller shares L1’s object', () => {
  it('gives a factory its own copy of the stale value: mutating it changes neither L1 nor what is served', async () => {
    const clock = new ManualClock(0);
    const cache = new Cache({ l1: { mode: 'clone' }, clock, ttlMs: 100, graceMs: 60_000 });
    await cache.set('profile', { name: 'Ada', visits: [1] });
    clock.advance(200);
    // A factory revalidating the stale value edits it in place, then fails: the stale value is served.
    const served = await cache.getOrSet<{ name: string; visits: number[] }>('profile', (context) => {
      const stale = context.staleValue!;
      stale.name = 'edited by the factory';
      stale.visits.push(2);
      throw new Error('source down');
    });
    expect(served).toEqual({ name: 'Ada', visits: [1] });
    clock.advance(10_000); // past the grace backoff: the factory runs again, with the same stale value
    const seen: unknown[] = [];
    await cache.getOrSet('profile', (context) => {
      seen.push(context.staleValue);
      return { name: 'Ada', visits: [1, 2] };
    });
    expect(seen).toEqual([{ name: 'Ada', visits: [1] }]);
    await cache.close();
  });
});
