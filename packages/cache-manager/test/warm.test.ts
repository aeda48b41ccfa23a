import { delay, ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';

describe('warm', () => {
  it('keeps at most `concurrency` loader calls in flight, even past the hard timeout', async () => {
    const cache = new Cache({ hardTimeoutMs: 20 });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    const keys = Array.from({ length: 10 }, (_, index) => `slow:${index}`);
    // A source that hangs: each load outlives the hard timeout until the test releases them all.
    const report = await cache.warm(
      keys,
      async (key) => {
        calls += 1;
        inFlight += 1;
        most = Math.max(most, inFlight);
        await released;
        inFlight -= 1;
        return key;
      },
      { concurrency: 2 },
    );
    // Past the hard timeout a lane gave up on its load and started the next: 10 loads at once
    // against a source that was already too slow. Now a key whose turn comes while both loads
    // still run waits for one up to the hard timeout, then fails without a load.
    expect(most).toBe(2);
    expect(calls).toBe(2);
    expect(report).toEqual({ total: 10, done: 10, loaded: 0, skipped: 0, failed: 10 });
    release();
    await cache.close();
  });

  it('runs `concurrency` loads at once when the source keeps up', async () => {
    const cache = new Cache({ hardTimeoutMs: 10_000 });
    let inFlight = 0;
    let most = 0;
    const report = await cache.warm(
      Array.from({ length: 20 }, (_, index) => `fast:${index}`),
      async (key) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        await delay(2);
        inFlight -= 1;
        return key;
      },
      { concurrency: 4 },
    );
    expect(most).toBe(4);
    expect(report.loaded).toBe(20);
    await cache.close();
  });

  it('skips fresh keys without refreshing them early (XFetch, refresh-ahead): no loader call beyond `concurrency`', async () => {
    const clock = new ManualClock(1_000_000);
    let draw = 0.5;
    const cache = new Cache({ clock, ttlMs: 10_000, refreshThresholdMs: 1_000, random: () => draw });
    const keys = Array.from({ length: 6 }, (_, index) => `fresh:${index}`);
    let calls = 0;
    let inFlight = 0;
    let most = 0;
    const loader = async (key: string) => {
      calls += 1;
      inFlight += 1;
      most = Math.max(most, inFlight);
      await delay(2); // a measured compute time, which XFetch weighs
      inFlight -= 1;
      return key;
    };
    expect(await cache.warm(keys, loader, { concurrency: 2 })).toMatchObject({ loaded: 6, skipped: 0 });
    expect(calls).toBe(6);
    // Still fresh, but within the refresh-ahead threshold, and XFetch's draw as low as it gets:
    // a getOrSet hit would refresh each of them in the background.
    clock.advance(9_500);
    draw = Number.MIN_VALUE;
    most = 0;
    const report = await cache.warm(keys, loader, { concurrency: 1 });
    await delay(20); // time for background refreshes to call the loader, had warm started any
    expect(report).toEqual({ total: 6, done: 6, loaded: 0, skipped: 6, failed: 0 });
    expect(calls).toBe(6);
    expect(most).toBe(0);
    await cache.close();
  });

  it('counts a loader returning undefined as loaded, and caches nothing for it (README)', async () => {
    const cache = new Cache();
    const report = await cache.warm(['none', 'some'], (key) => (key === 'none' ? undefined : key));
    expect(report).toMatchObject({ loaded: 2, skipped: 0, failed: 0 });
    expect(await cache.has('none')).toBe(false);
    expect((await cache.warm(['none', 'some'], () => 'again')).loaded).toBe(1);
    await cache.close();
  });
});
