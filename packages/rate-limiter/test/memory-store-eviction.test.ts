import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { type AutoBlockPolicy, autoBlockSchema } from '../src/auto-block.js';
import { MemoryStore } from '../src/index.js';
import type { LimitPolicy } from '../src/policy.js';

const start = 1_700_000_000_000;
const limits: LimitPolicy[] = [{ name: 'd', algorithm: 'fixed-window', limit: 1, windowMs: 1_000 }];
const autoBlock: AutoBlockPolicy = autoBlockSchema.parse({
  violations: 2,
  withinMs: 10_000,
  blockMs: 3_600_000,
});

describe('MemoryStore eviction under a flood of new keys', () => {
  it('keeps a blocked key that went quiet: its block outlives the flood', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 100, clock });
    for (let index = 0; index < 3; index += 1) store.consumeOne('abuser', limits, 1, autoBlock);
    expect(store.consumeOne('abuser', limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
    // The abuser waits quietly while 10,000 other clients come and go.
    for (let index = 0; index < 10_000; index += 1) {
      if (index % 100 === 0) clock.advance(2_000);
      store.consumeOne(`client-${index}`, limits, 1, autoBlock);
      expect(store.size).toBeLessThanOrEqual(100);
    }
    expect(store.consumeOne('abuser', limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });

  it('keeps every quiet blocked key through a flood while they fit in maxBlockedKeys (17 and more)', () => {
    const clock = new ManualClock(start);
    // maxBlockedKeys defaults to a tenth of maxKeys: 20 here.
    const store = new MemoryStore({ maxKeys: 200, clock });
    const abusers = Array.from({ length: 20 }, (_, index) => `abuser-${index}`);
    for (const abuser of abusers)
      for (let attempt = 0; attempt < 3; attempt += 1) store.consumeOne(abuser, limits, 1, autoBlock);
    for (const abuser of abusers)
      expect(store.consumeOne(abuser, limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
    // 20,000 fresh keys (spoofed IPs) while the abusers wait quietly.
    for (let index = 0; index < 20_000; index += 1) {
      if (index % 1_000 === 0) clock.advance(2_000);
      store.consumeOne(`client-${index}`, limits, 1, autoBlock);
      expect(store.size).toBeLessThanOrEqual(200 + 20);
    }
    const unblocked = abusers.filter(
      (abuser) => store.consumeOne(abuser, limits, 1, autoBlock).blockedMs === 0,
    );
    expect(unblocked).toEqual([]);
  });

  it('keeps the blocked keys apart: the counters are evicted, and the store stays within maxKeys + maxBlockedKeys', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 100, maxBlockedKeys: 40, clock });
    // Blocked keys and active clients interleaved, then a flood.
    for (let index = 0; index < 40; index += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1)
        store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
      store.consumeOne(`client-${index}`, limits, 1, autoBlock);
    }
    for (let index = 0; index < 5_000; index += 1) {
      store.consumeOne(`flood-${index}`, limits, 1, autoBlock);
      expect(store.size).toBeLessThanOrEqual(140);
    }
    for (let index = 0; index < 40; index += 1)
      expect(store.consumeOne(`abuser-${index}`, limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });

  it('with maxBlockedKeys 0, blocked keys are evicted as any other', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 50, maxBlockedKeys: 0, clock });
    for (let attempt = 0; attempt < 3; attempt += 1) store.consumeOne('abuser', limits, 1, autoBlock);
    for (let index = 0; index < 50; index += 1) {
      store.consumeOne(`client-${index}`, limits, 1, autoBlock);
      expect(store.size).toBeLessThanOrEqual(50);
    }
    expect(store.consumeOne('abuser', limits, 1, autoBlock).blockedMs).toBe(0);
  });

  it('still evicts blocked keys past maxBlockedKeys (the cap holds)', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 50, clock });
    for (let index = 0; index < 500; index += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1)
        store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
      // 5: a tenth of maxKeys, the default maxBlockedKeys.
      expect(store.size).toBeLessThanOrEqual(50 + 5);
    }
    // The newest are kept.
    expect(store.consumeOne('abuser-499', limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });
});
