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

describe('l1.mode freeze: only the caller that ran the factory gets its own object', () => {
  type Profile = { name: string; visits: number[] };
  const profile = (): Profile => ({ name: 'Ada', visits: [1] });

  it('a getOrSet that joined another caller’s run gets a frozen value, not the runner’s object', async () => {
    const cache = new Cache({ l1: { mode: 'freeze' } });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = cache.getOrSet('profile', async () => {
      await gate;
      return profile();
    });
    const joiners = [
      cache.getOrSet<Profile>('profile', profile),
      cache.getOrSet<Profile>('profile', profile),
    ];
    release();
    const [own, ...joined] = await Promise.all([runner, ...joiners]);
    // The runner may edit the object its factory made: no joiner sees that, and none can edit.
    own.visits.push(2);
    for (const value of joined) {
      expect(value).toEqual(profile());
      expect(Object.isFrozen(value) && Object.isFrozen(value.visits)).toBe(true);
      expect(() => value.visits.push(3)).toThrow(TypeError);
    }
    // One frozen copy for every joiner, not one each.
    expect(joined[0]).toBe(joined[1]);
    expect(await cache.get('profile')).toEqual(profile());
    await cache.close();
  });

  it('a getOrSetMany key that joined a getOrSet run gets a frozen value too', async () => {
    const cache = new Cache({ l1: { mode: 'freeze' } });
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const runner = cache.getOrSet('profile', async () => {
      await gate;
      return profile();
    });
    const many = cache.getOrSetMany<Profile>(['profile'], (keys) => keys.map(profile));
    release();
    const [own, [joined]] = await Promise.all([runner, many]);
    own.visits.push(2);
    expect(joined).toEqual(profile());
    expect(Object.isFrozen(joined!.visits)).toBe(true);
    await cache.close();
  });
});
