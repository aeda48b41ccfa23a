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

  it('still evicts blocked keys when nothing else is left (the cap holds)', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 50, clock });
    for (let index = 0; index < 500; index += 1) {
      for (let attempt = 0; attempt < 3; attempt += 1)
        store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
      expect(store.size).toBeLessThanOrEqual(50);
    }
    // The newest are kept.
    expect(store.consumeOne('abuser-499', limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });
});
