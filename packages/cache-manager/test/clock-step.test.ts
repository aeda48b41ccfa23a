import { recordingLogger } from '@noa/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/** A wall clock the test steps, as NTP (or a VM resumed from a snapshot) steps the system's. */
function steppedClock(startMs = 1_800_000_000_000) {
  let now = startMs;
  return {
    clock: { now: () => now },
    step: (ms: number) => {
      now += ms;
    },
  };
}

describe('a wall clock that steps back', () => {
  it('l1.maxTtlMs still bounds L1: a step back of an hour drops L1 (before, its copies stayed an hour longer)', async () => {
    const { clock, step } = steppedClock();
    const logger = recordingLogger();
    const cache = make({ clock, logger, l1: { maxTtlMs: 100 } });
    await cache.set('permission', 'allow');
    step(-3_600_000);
    step(150); // more than maxTtlMs after the write, on the stepped clock
    expect(cache.getLocal('permission')).toBeUndefined();
    expect(await cache.get('permission')).toBeUndefined();
    expect(logger.entries.some((entry) => entry.level === 'warn' && /went back/.test(entry.message))).toBe(
      true,
    );
    // A value written after the step is bounded on the new time, as any other.
    await cache.set('permission', 'deny');
    step(50);
    expect(cache.getLocal('permission')).toBe('deny');
    step(60);
    expect(cache.getLocal('permission')).toBeUndefined();
  });

  it('a step back within a second keeps L1, as does any step back without l1.maxTtlMs (entries expire by the wall clock)', async () => {
    const { clock, step } = steppedClock();
    const bounded = make({ clock, l1: { maxTtlMs: 60_000 } });
    const unbounded = make({ clock, ttlMs: 60_000 });
    await bounded.set('k', 1);
    await unbounded.set('k', 1);
    step(-900);
    expect(bounded.getLocal('k')).toBe(1);
    step(-3_600_000);
    expect(unbounded.getLocal('k')).toBe(1);
  });
});
