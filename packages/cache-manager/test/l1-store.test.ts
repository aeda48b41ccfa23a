import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hitRate } from '../bench/hit-rate.js';
import { loopTrace, recencyTrace } from '../bench/traces.js';
import {
  type CacheEntry,
  createEvictionPolicy,
  createL1Store,
  type EvictionPolicyName,
} from '../src/index.js';
import { AdaptivePolicy } from '../src/l1/policies/adaptive-policy.js';
import { CountMinSketch } from '../src/l1/policies/count-min-sketch.js';

const policies: EvictionPolicyName[] = ['lru', 'lfu', 'fifo', 'ttl', 'adaptive'];

function entry(value: unknown, expiresAt = Number.POSITIVE_INFINITY): CacheEntry {
  return { value, createdAt: 0, expiresAt, staleUntil: expiresAt, computeMs: 0, tags: [] };
}

type Op =
  | { kind: 'set'; key: number; bytes: number; ttl: number }
  | { kind: 'get'; key: number }
  | { kind: 'del'; key: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    key: fc.integer({ min: 0, max: 40 }),
    bytes: fc.integer({ min: 1, max: 300 }),
    ttl: fc.integer({ min: 1, max: 1_000 }),
  }),
  fc.record({ kind: fc.constant('get' as const), key: fc.integer({ min: 0, max: 40 }) }),
  fc.record({ kind: fc.constant('del' as const), key: fc.integer({ min: 0, max: 40 }) }),
);

describe.each(policies)('L1 store (%s)', (policy) => {
  it('never exceeds its entry and byte budgets, and agrees with a model of what it holds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 300, max: 3_000 }),
        fc.array(opArb, { maxLength: 300 }),
        (maxEntries, maxBytes, ops) => {
          const removed: string[] = [];
          const store = createL1Store(policy, maxEntries, maxBytes, (key) => removed.push(key));
          const model = new Map<string, number>();
          let now = 0;
          for (const op of ops) {
            const key = `k${op.key}`;
            if (op.kind === 'set') {
              store.set(key, entry(op.bytes, now + op.ttl), op.bytes);
              model.set(key, op.bytes);
            } else if (op.kind === 'get') {
              const got = store.get(key, now);
              // What the store returns is what was last written, never another key's value.
              if (got !== undefined) expect(got.value).toBe(model.get(key));
            } else {
              store.delete(key);
              model.delete(key);
            }
            now += 1;
            expect(store.size).toBeLessThanOrEqual(maxEntries);
            expect(store.bytes).toBeLessThanOrEqual(maxBytes);
            // Every key the store holds is in the model with the same value.
            for (const held of store.keys()) expect(model.has(held)).toBe(true);
            expect([...store.keys()].length).toBe(store.size);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('counts exactly the bytes it holds and reports every entry that leaves, under byte pressure', () => {
    const ops = fc.array(
      fc.oneof(
        opArb,
        // Entries up to larger than the whole bound, and clears.
        fc.record({
          kind: fc.constant('set' as const),
          key: fc.integer({ min: 0, max: 40 }),
          bytes: fc.integer({ min: 1, max: 3_500 }),
          ttl: fc.integer({ min: 1, max: 100 }),
        }),
        fc.constant({ kind: 'clear' as const }),
      ),
      { maxLength: 300 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 300, max: 3_000 }),
        ops,
        (maxEntries, maxBytes, list) => {
          // What the store should hold: added on set, taken out only by its removal reports.
          const held = new Map<string, number>();
          const store = createL1Store(policy, maxEntries, maxBytes, (key, removed) => {
            expect(held.get(key)).toBe(removed.value);
            held.delete(key);
          });
          let now = 0;
          for (const op of list) {
            if (op.kind === 'set') {
              // An overwrite is not reported; an entry over the bound is not stored (its key is deleted).
              if (op.bytes <= maxBytes) held.set(`k${op.key}`, op.bytes);
              store.set(`k${op.key}`, entry(op.bytes, now + op.ttl), op.bytes);
            } else if (op.kind === 'get') store.get(`k${op.key}`, now);
            else if (op.kind === 'del') store.delete(`k${op.key}`);
            else store.clear();
            now += 1;
            expect([...store.keys()].sort()).toEqual([...held.keys()].sort());
            expect(store.bytes).toBe([...held.values()].reduce((sum, bytes) => sum + bytes, 0));
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('drops entries once past their grace, reporting them as expired', () => {
    const reasons: string[] = [];
    const store = createL1Store(policy, 10, 10_000, (_key, _entry, reason) => reasons.push(reason));
    store.set('a', entry('v', 100), 1);
    expect(store.get('a', 99)?.value).toBe('v');
    expect(store.get('a', 100)).toBeUndefined();
    expect(store.size).toBe(0);
    expect(reasons).toEqual(['expired']);
  });

  it('peek returns the entry held, past its grace too, and is no read: nothing dropped, no recency or frequency', () => {
    const aged = createL1Store(policy, 2, 1_000);
    aged.set('x', entry('x', 10), 1);
    expect(aged.peek('x')?.value).toBe('x');
    expect(aged.peek('missing')).toBeUndefined();
    expect(aged.size).toBe(1);
    // Whatever the policy, a store only peeked at evicts as one never looked at.
    const [peeked, untouched] = [createL1Store(policy, 2, 1_000), createL1Store(policy, 2, 1_000)];
    for (const store of [peeked, untouched]) {
      store.set('a', entry('a', 100), 1);
      store.set('b', entry('b', 200), 1);
    }
    for (let index = 0; index < 3; index += 1) peeked.peek('a');
    for (const store of [peeked, untouched]) store.set('c', entry('c', 300), 1);
    expect([...peeked.keys()].sort()).toEqual([...untouched.keys()].sort());
  });

  it('does not store an entry larger than the byte budget', () => {
    const store = createL1Store(policy, 10, 100);
    store.set('big', entry('x'), 101);
    expect(store.get('big', 0)).toBeUndefined();
    expect(store.bytes).toBe(0);
  });
});

describe('eviction order', () => {
  it.each([
    ['lru evicts the least recently read', 'lru', ['a', 'c']],
    ['fifo ignores reads', 'fifo', ['b', 'c']],
  ] as const)('%s', (_title, policy, kept) => {
    const store = createL1Store(policy, 2, 1_000);
    store.set('a', entry(1), 1);
    store.set('b', entry(2), 1);
    store.get('a', 0);
    store.set('c', entry(3), 1);
    expect([...store.keys()].sort()).toEqual(kept);
  });

  it('lfu keeps the most read', () => {
    const store = createL1Store('lfu', 2, 1_000);
    store.set('a', entry(1), 1);
    store.set('b', entry(2), 1);
    store.get('a', 0);
    store.get('a', 0);
    store.get('b', 0);
    store.set('c', entry(3), 1);
    expect([...store.keys()].sort()).toEqual(['a', 'c']);
  });

  it('ttl evicts the soonest to expire', () => {
    const store = createL1Store('ttl', 2, 1_000);
    store.set('late', entry(1, 500), 1);
    store.set('soon', entry(2, 100), 1);
    store.set('mid', entry(3, 300), 1);
    expect([...store.keys()].sort()).toEqual(['late', 'mid']);
  });

  it('adaptive keeps a popular set through a one-pass scan', () => {
    const capacity = 100;
    const policy = createEvictionPolicy('adaptive', capacity);
    const held = new Set<string>();
    const access = (key: string) => {
      if (held.has(key)) policy.touch(key);
      else {
        policy.recordMiss(key);
        held.add(key);
        for (const victim of policy.insert(key, Number.POSITIVE_INFINITY)) held.delete(victim);
      }
    };
    for (let round = 0; round < 20; round += 1) for (let key = 0; key < 50; key += 1) access(`hot${key}`);
    for (let key = 0; key < 5_000; key += 1) access(`scan${key}`);
    const survivors = [...held].filter((key) => key.startsWith('hot')).length;
    expect(survivors).toBeGreaterThanOrEqual(45);
    expect(held.size).toBeLessThanOrEqual(capacity);
  });
});

describe('adaptive window', () => {
  const capacity = 100;

  /** Replays `trace` through `policy` as a cache would; returns the window after each request. */
  function replay(policy: AdaptivePolicy, trace: Uint32Array, held: Set<string>, prefix: string): number[] {
    const windows: number[] = [];
    for (const id of trace) {
      const key = `${prefix}${id}`;
      if (held.has(key)) policy.touch(key);
      else {
        policy.recordMiss(key);
        held.add(key);
        for (const victim of policy.insert(key)) held.delete(victim);
      }
      windows.push(policy.windowCapacity);
    }
    return windows;
  }

  it('grows the window on a recency trace, then shrinks it on a frequency (loop) trace', () => {
    const policy = new AdaptivePolicy(capacity);
    const held = new Set<string>();
    const initial = policy.windowCapacity;
    const recency = replay(policy, recencyTrace(100_000, 1, capacity / 4), held, 'r');
    const settled = recency.slice(recency.length / 2);
    expect(initial).toBe(1);
    expect(settled.reduce((sum, window) => sum + window, 0) / settled.length).toBeGreaterThanOrEqual(35);
    const loop = replay(policy, loopTrace(100_000, capacity * 1.25, 2), held, 'l');
    expect(Math.max(...loop.slice(-20_000))).toBeLessThanOrEqual(5);
  });

  it('gets most of what LRU gets on a recency trace, and most of what LFU gets on a loop', () => {
    const recency = recencyTrace(100_000, 1, capacity / 4);
    expect(hitRate('adaptive', capacity, recency)).toBeGreaterThanOrEqual(
      0.75 * hitRate('lru', capacity, recency),
    );
    const loop = loopTrace(100_000, capacity * 1.25, 2);
    expect(hitRate('adaptive', capacity, loop)).toBeGreaterThanOrEqual(0.9 * hitRate('lfu', capacity, loop));
  });
});

describe('hottest keys', () => {
  it.each(policies)('%s lists at most the held keys, without duplicates', (policy) => {
    const store = createL1Store(policy, 5, 1_000);
    for (let index = 0; index < 8; index += 1) store.set(`k${index}`, entry(index, 100 + index), 1);
    store.get('k6', 0);
    const hottest = store.hottest(10);
    expect(new Set(hottest).size).toBe(hottest.length);
    expect(hottest.length).toBe(store.size);
    for (const key of hottest) expect(store.get(key, 0)).toBeDefined();
    expect(store.hottest(2)).toHaveLength(2);
  });

  it('lru lists the most recently used first', () => {
    const store = createL1Store('lru', 5, 1_000);
    for (const key of ['a', 'b', 'c']) store.set(key, entry(key), 1);
    store.get('a', 0);
    expect(store.hottest(3)).toEqual(['a', 'c', 'b']);
  });
});

describe('count-min sketch', () => {
  it('never under-counts before its first reset', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 400 }), (keys) => {
        const sketch = new CountMinSketch(1_000);
        const truth = new Map<number, number>();
        for (const key of keys) {
          sketch.increment(`k${key}`);
          truth.set(key, (truth.get(key) ?? 0) + 1);
        }
        for (const [key, count] of truth)
          expect(sketch.frequency(`k${key}`)).toBeGreaterThanOrEqual(Math.min(15, count));
      }),
    );
  });
});

describe('TTL policy with sliding entries', () => {
  it('orders by the expiry an entry has now, not the one it was stored with', () => {
    const store = createL1Store('ttl', 2, 1_000_000);
    const slid = entry('a', 100);
    store.set('a', slid, 1);
    store.set('b', entry('b', 200), 1);
    slid.expiresAt = 300; // a read slid it in place, as slideEntry does
    store.set('c', entry('c', 250), 1); // over the entry budget: the soonest to expire goes
    expect([...store.keys()].sort()).toEqual(['a', 'c']);
    store.set('d', entry('d', 400), 1);
    expect([...store.keys()].sort()).toEqual(['a', 'd']);
  });

  it('the byte budget picks its victim the same way', () => {
    const store = createL1Store('ttl', 10, 3);
    const slid = entry('a', 100);
    store.set('a', slid, 1);
    store.set('b', entry('b', 200), 1);
    slid.expiresAt = 300;
    store.set('c', entry('c', 250), 2); // 4 bytes over a budget of 3
    expect([...store.keys()].sort()).toEqual(['a', 'c']);
  });
});
