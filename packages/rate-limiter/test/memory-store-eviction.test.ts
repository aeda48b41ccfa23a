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
      // maxKeys, and the room of the one blocked key.
      expect(store.size).toBeLessThanOrEqual(100 + 1);
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

  it('holds the counters to maxKeys through a long flood: the blocked keys passed over are no lasting excess', () => {
    // Expired counters behind a blocked key at the old end were dropped one for one, so the keys
    // passed over stayed over the cap, and the excess grew each time the blocked keys came round
    // again (1,180 keys after 60,000 here), until the hard cap dropped blocks.
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 1_000, maxBlockedKeys: 200, clock });
    for (let index = 0; index < 100; index += 1)
      for (let attempt = 0; attempt < 3; attempt += 1)
        store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
    let largest = 0;
    for (let index = 0; index < 60_000; index += 1) {
      if (index % 500 === 0) clock.advance(2_000);
      store.consumeOne(`client-${index}`, limits, 1, autoBlock);
      largest = Math.max(largest, store.size);
    }
    // maxKeys, the 100 blocked keys, and one key over per 16 of them passed over at a time.
    expect(largest).toBeLessThanOrEqual(1_000 + 100 + Math.ceil(100 / 16));
    for (let index = 0; index < 100; index += 1)
      expect(store.consumeOne(`abuser-${index}`, limits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });

  it('keeps every blocked key through a flood of keys that expire, up to maxBlockedKeys of them', () => {
    for (const blocked of [190, 200]) {
      const clock = new ManualClock(start);
      const store = new MemoryStore({ maxKeys: 1_000, maxBlockedKeys: 200, clock });
      for (let index = 0; index < blocked; index += 1)
        for (let attempt = 0; attempt < 3; attempt += 1)
          store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
      for (let index = 0; index < 20_000; index += 1) {
        if (index % 500 === 0) clock.advance(2_000);
        store.consumeOne(`client-${index}`, limits, 1, autoBlock);
        expect(store.size).toBeLessThanOrEqual(1_200);
      }
      let kept = 0;
      for (let index = 0; index < blocked; index += 1)
        if (store.consumeOne(`abuser-${index}`, limits, 1, autoBlock).blockedMs > 0) kept += 1;
      expect(kept).toBe(blocked);
    }
  });

  it('past maxBlockedKeys, blocked keys do not squeeze the counters out of maxKeys', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 100, maxBlockedKeys: 10, clock });
    // A thousand keys get blocked: ten of them keep their room.
    for (let index = 0; index < 1_000; index += 1)
      for (let attempt = 0; attempt < 3; attempt += 1)
        store.consumeOne(`abuser-${index}`, limits, 1, autoBlock);
    expect(store.size).toBeLessThanOrEqual(110);
    // Then a hundred clients spend their quota: every counter is kept (refused again, not fresh).
    for (let index = 0; index < 100; index += 1) store.consumeOne(`client-${index}`, limits, 1, autoBlock);
    const fresh = Array.from({ length: 100 }, (_, index) => `client-${index}`).filter(
      (client) => store.consumeOne(client, limits, 1, autoBlock).decisions[0]!.allowed,
    );
    expect(fresh).toEqual([]);
    expect(store.size).toBeLessThanOrEqual(110);
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
