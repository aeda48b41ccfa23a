import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ManualClock } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type AutoBlockPolicy, autoBlockSchema } from '../src/auto-block.js';
import { type ConsumeOutcome, createRateLimiter, MemoryStore, type RateLimitStore } from '../src/index.js';
import type { LimitPolicy } from '../src/policy.js';

const start = 1_700_000_000_000;

/**
 * Counts the iterations started over large Maps (a store's keys; the map of namespaces holds a
 * few). A V8 Map keeps a deleted entry's slot until it is rehashed, and an iteration from its
 * head walks every such slot: a store that finds its oldest keys by iterating its Map from the
 * head at each insertion walks, past the cap, all the keys evicted since the last rehash (up to
 * the Map's capacity), which made a new key 20-200x dearer at 1-8x `maxKeys`. That walk is not
 * seen from JavaScript (the iterator skips the slots), so the test counts what leads to it: an
 * iteration of a store's key map per insertion.
 */
function countLargeMapIterations(threshold: number): { readonly count: number; restore(): void } {
  const prototype = Map.prototype as unknown as Record<PropertyKey, unknown>;
  const names: PropertyKey[] = [Symbol.iterator, 'entries', 'keys', 'values', 'forEach'];
  const originals = new Map(names.map((name) => [name, prototype[name] as (...args: unknown[]) => unknown]));
  const counter = {
    count: 0,
    restore() {
      for (const [name, original] of originals) prototype[name] = original;
    },
  };
  for (const [name, original] of originals)
    prototype[name] = function (this: Map<unknown, unknown>, ...args: unknown[]) {
      if (this.size >= threshold) counter.count += 1;
      return original.apply(this, args);
    };
  return counter;
}

let counter: { readonly count: number; restore(): void } | undefined;
afterEach(() => {
  counter?.restore();
  counter = undefined;
});

// An hour: the keys' windows do not roll over within a test (a key would start afresh).
const window: LimitPolicy[] = [{ name: 'w', algorithm: 'fixed-window', limit: 100, windowMs: 3_600_000 }];
const twoLimits: LimitPolicy[] = [
  { name: 'burst', algorithm: 'token-bucket', limit: 10, windowMs: 1_000 },
  { name: 'minute', algorithm: 'sliding-window', limit: 100, windowMs: 60_000 },
];
const autoBlock: AutoBlockPolicy = autoBlockSchema.parse({
  violations: 2,
  withinMs: 10_000,
  blockMs: 60_000,
});

describe('MemoryStore past maxKeys: bounded work per insertion', () => {
  it('the default limiter (one fixed window, checkSync) does not iterate its key map per new key at 1-8x the cap', () => {
    const maxKeys = 2_000;
    const store = new MemoryStore({ maxKeys, clock: new ManualClock(start) });
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], store });
    for (let index = 0; index < maxKeys; index += 1) limiter.checkSync(`k:${index}`);
    counter = countLargeMapIterations(maxKeys / 2);
    for (let index = maxKeys; index < 8 * maxKeys; index += 1) limiter.checkSync(`k:${index}`);
    const iterations = counter.count;
    counter.restore();
    expect(store.size).toBe(maxKeys);
    // None is needed; a few are allowed (not one per key: 14,000 new keys here).
    expect(iterations).toBeLessThan(20);
  });

  it('the general path (several limits, auto-block) neither, with keys that expire and blocked keys kept apart', () => {
    const maxKeys = 2_000;
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys, clock });
    for (let index = 0; index < 50; index += 1)
      for (let attempt = 0; attempt < 12; attempt += 1)
        store.consumeOne(`abuser-${index}`, twoLimits, 1, autoBlock);
    for (let index = 0; index < maxKeys; index += 1) store.consumeOne(`k:${index}`, twoLimits, 1, autoBlock);
    counter = countLargeMapIterations(maxKeys / 2);
    for (let index = maxKeys; index < 8 * maxKeys; index += 1) {
      if (index % 1_000 === 0) clock.advance(500);
      store.consumeOne(`k:${index}`, twoLimits, 1, autoBlock);
    }
    const iterations = counter.count;
    counter.restore();
    expect(store.size).toBeLessThanOrEqual(maxKeys + 50 + 1);
    expect(iterations).toBeLessThan(20);
    // The blocked keys kept their room through the flood.
    for (let index = 0; index < 50; index += 1)
      expect(store.consumeOne(`abuser-${index}`, twoLimits, 1, autoBlock).blockedMs).toBeGreaterThan(0);
  });

  it("failMode 'local': the fallback store (default maxKeys, 100,000) neither, past its cap", async () => {
    const limiter = createRateLimiter({
      store: new FailingStore(),
      limits: [{ limit: 100, windowMs: 60_000 }],
      failMode: 'local',
      breaker: { consecutiveFailures: 1, halfOpenAfterMs: 600_000 },
    });
    // A thousand checks at a time: the breaker answers them in one tick.
    const checkKeys = async (from: number, to: number) => {
      for (let first = from; first < to; first += 1_000) {
        const checks = [];
        for (let index = first; index < first + 1_000; index += 1) checks.push(limiter.check(`k:${index}`));
        for (const result of await Promise.all(checks))
          if (result.source !== 'fallback') throw new Error(`source ${result.source}`);
      }
    };
    await limiter.check('first');
    expect(limiter.fallbackActive).toBe(true);
    await checkKeys(0, 100_000);
    counter = countLargeMapIterations(50_000);
    await checkKeys(100_000, 120_000);
    const iterations = counter.count;
    counter.restore();
    expect(iterations).toBeLessThan(20);
    await limiter.close();
  }, 60_000);

  it('keeps the busy keys and evicts the idle ones (least recently used first)', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 100, clock });
    for (let index = 0; index < 10; index += 1) store.consumeOne(`busy-${index}`, window, 1, undefined);
    for (let round = 0; round < 50; round += 1) {
      clock.advance(1_001);
      for (let index = 0; index < 10; index += 1) store.consumeOne(`busy-${index}`, window, 1, undefined);
      for (let index = 0; index < 20; index += 1)
        store.consumeOne(`idle-${round}-${index}`, window, 1, undefined);
      expect(store.size).toBeLessThanOrEqual(100);
    }
    // Each busy key has spent 51 of its 100: a fresh quota would say 99 left.
    for (let index = 0; index < 10; index += 1)
      expect(store.consumeOne(`busy-${index}`, window, 1, undefined).decisions[0]!.remaining).toBe(48);
    // The oldest idle keys are gone (a fresh quota), the newest are kept.
    expect(store.consumeOne('idle-0-0', window, 1, undefined).decisions[0]!.remaining).toBe(99);
    expect(store.consumeOne('idle-49-19', window, 1, undefined).decisions[0]!.remaining).toBe(98);
  });
});

describe('MemoryStore under a key flood: memory stays bounded', () => {
  it('8x maxKeys more distinct keys grow the heap by a fraction of what the first maxKeys took', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const maxKeys = 20_000;
    const store = new MemoryStore({ maxKeys, clock: new ManualClock(start) });
    gc();
    const empty = process.memoryUsage().heapUsed;
    for (let index = 0; index < maxKeys; index += 1) store.consumeSingle(`k:${index}`, window[0]!, 1);
    gc();
    const full = process.memoryUsage().heapUsed;
    for (let index = maxKeys; index < 9 * maxKeys; index += 1) {
      store.consumeSingle(`k:${index}`, window[0]!, 1);
      if (store.size > maxKeys) throw new Error(`size ${store.size} after key ${index}`);
    }
    gc();
    const flooded = process.memoryUsage().heapUsed;
    const held = full - empty;
    expect(held / maxKeys).toBeGreaterThan(0);
    // The keys held are as many; what grew (0.92–0.95 MB in each run measured, alone or in the
    // full unit run; not attributed) is less than the first maxKeys took, where 8x
    // maxKeys kept would be 8x it. Not "half of it": the first maxKeys measure 110–140 B a key in
    // a process that ran other files first (unit files share one), 220 B in a fresh one, and
    // the growth came to 43% of the smaller figure in a full unit run.
    expect(flooded - full, JSON.stringify({ empty, full, flooded })).toBeLessThan(held);
    expect(store.size).toBe(maxKeys);
  }, 60_000);
});

/** A remote store whose every call fails (a Redis that is down). */
class FailingStore implements RateLimitStore {
  readonly kind = 'failing';
  readonly remote = true;
  consume(): Promise<ConsumeOutcome[]> {
    return Promise.reject(new Error('connection refused'));
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}
