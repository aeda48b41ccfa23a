import { ManualClock } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions, type CacheStats, FactoryError } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

const TTL_MS = 1_000;
const GRACE_MS = 500;

type Op =
  | { kind: 'set' | 'get' | 'has' | 'getOrSet' | 'getOrSetFailing' | 'delete'; key: number }
  | { kind: 'getMany'; keys: number[] }
  | { kind: 'advance'; ms: number };

const key = fc.integer({ min: 0, max: 3 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constantFrom('set', 'get', 'has', 'getOrSet', 'getOrSetFailing', 'delete' as const),
    key,
  }),
  fc.record({ kind: fc.constant('getMany' as const), keys: fc.array(key, { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 1_600 }) }),
);

/** The counters a run of ops must produce, from a model of which keys are fresh or in grace. */
interface Expected {
  hits: number;
  misses: number;
  factoryRuns: number;
  factoryErrors: number;
  staleServed: number;
}

describe('cache.stats() counters (memory, injected clock)', () => {
  it('are all zero, with a hit rate of 0, before any lookup', () => {
    const stats = make().stats();
    expect(stats.hits).toEqual({ l1: 0, l2: 0 });
    expect(stats.misses).toBe(0);
    expect(stats.hitRate).toBe(0);
    expect(stats.factoryRuns).toBe(0);
    expect(stats.staleServed).toEqual({
      factory_error: 0,
      soft_timeout: 0,
      hard_timeout: 0,
      lock_timeout: 0,
    });
    expect(stats.degraded).toEqual({ total: 0, breakerOpen: 0 });
    expect(stats.evictions).toEqual({ evicted: 0, expired: 0, tooLarge: 0 });
  });

  it('match a model of freshness and grace over any sequence of calls', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
        const clock = new ManualClock(1_000_000);
        const cache = new Cache({
          clock,
          ttlMs: TTL_MS,
          graceMs: GRACE_MS,
          graceBackoffMs: 0,
          earlyRefreshBeta: 0,
        });
        const writtenAt = new Map<number, number>();
        const expected: Expected = { hits: 0, misses: 0, factoryRuns: 0, factoryErrors: 0, staleServed: 0 };
        const fresh = (k: number) => {
          const at = writtenAt.get(k);
          return at !== undefined && clock.now() < at + TTL_MS;
        };
        const inGrace = (k: number) => {
          const at = writtenAt.get(k);
          return at !== undefined && clock.now() < at + TTL_MS + GRACE_MS;
        };
        const lookup = (k: number) => {
          if (fresh(k)) expected.hits += 1;
          else expected.misses += 1;
          return fresh(k);
        };
        try {
          for (const step of ops) {
            switch (step.kind) {
              case 'advance':
                clock.advance(step.ms);
                break;
              case 'set':
                await cache.set(`k${step.key}`, step.key);
                writtenAt.set(step.key, clock.now());
                break;
              case 'delete':
                await cache.delete(`k${step.key}`);
                writtenAt.delete(step.key);
                break;
              case 'get':
                lookup(step.key);
                await cache.get(`k${step.key}`);
                break;
              case 'has':
                lookup(step.key);
                await cache.has(`k${step.key}`);
                break;
              case 'getMany':
                for (const k of step.keys) lookup(k);
                await cache.getMany(step.keys.map((k) => `k${k}`));
                break;
              case 'getOrSet':
                if (!lookup(step.key)) {
                  expected.factoryRuns += 1;
                  writtenAt.set(step.key, clock.now());
                }
                await cache.getOrSet(`k${step.key}`, () => step.key);
                break;
              case 'getOrSetFailing': {
                const wasFresh = lookup(step.key);
                const stale = !wasFresh && inGrace(step.key);
                if (!wasFresh) {
                  expected.factoryRuns += 1;
                  expected.factoryErrors += 1;
                  if (stale) expected.staleServed += 1;
                }
                const call = cache.getOrSet(`k${step.key}`, () => Promise.reject(new Error('source down')));
                if (wasFresh || stale) await call;
                else await expect(call).rejects.toBeInstanceOf(FactoryError);
                break;
              }
            }
          }
          const stats: CacheStats = cache.stats();
          expect(stats.hits).toEqual({ l1: expected.hits, l2: 0 });
          expect(stats.misses).toBe(expected.misses);
          expect(stats.factoryRuns).toBe(expected.factoryRuns);
          expect(stats.factoryErrors).toBe(expected.factoryErrors);
          expect(stats.staleServed.factory_error).toBe(expected.staleServed);
          const lookups = expected.hits + expected.misses;
          expect(stats.hitRate).toBe(lookups === 0 ? 0 : expected.hits / lookups);
        } finally {
          await cache.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a value larger than l1.maxBytes, memory only: the set resolves, the value is not kept, and that is counted and logged', async () => {
    const logger = recordingLogger();
    const cache = make({ logger, l1: { maxBytes: 1_000 } });
    await cache.set('small', 'x');
    await cache.set('large', 'x'.repeat(10_000));
    expect(await cache.get('large')).toBeUndefined();
    expect(await cache.get('small')).toBe('x');
    expect(cache.stats().evictions).toEqual({ evicted: 0, expired: 0, tooLarge: 1 });
    const warnings = logger.entriesAt('warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/l1\.maxBytes/);
    expect(warnings[0]!.fields).toMatchObject({ key: 'large', maxBytes: 1_000 });
  });

  it('counts L1 evictions for room and stale values served past a hard timeout', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, ttlMs: 1_000, graceMs: 60_000, l1: { policy: 'lru', maxEntries: 2 } });
    await cache.set('a', 1);
    await cache.set('b', 2);
    await cache.set('c', 3); // the bound is 2 entries: LRU drops 'a'
    clock.advance(2_000);
    let finish: (value: number) => void = () => {};
    const slow = new Promise<number>((resolve) => {
      finish = resolve;
    });
    expect(await cache.getOrSet('c', () => slow, { hardTimeoutMs: 20 })).toBe(3);
    const stats = cache.stats();
    expect(stats.evictions).toEqual({ evicted: 1, expired: 0, tooLarge: 0 });
    expect(stats.staleServed).toEqual({
      factory_error: 0,
      soft_timeout: 0,
      hard_timeout: 1,
      lock_timeout: 0,
    });
    expect(stats.hits.l1).toBe(0);
    expect(stats.misses).toBe(1);
    finish(4); // lets close() find no background work pending
  });

  it('resetStats() zeroes the counters (cache-wide, through a namespace view) but not the sizes', async () => {
    const cache = make({ ttlMs: 60_000 });
    const view = cache.namespace('tenant');
    await view.getOrSet('a', () => 1);
    await view.getOrSet('a', () => 1);
    expect(cache.stats().hits.l1).toBe(1);
    expect(cache.stats().hitRate).toBe(0.5);
    view.resetStats();
    const stats = cache.stats();
    expect(stats.hits.l1).toBe(0);
    expect(stats.misses).toBe(0);
    expect(stats.factoryRuns).toBe(0);
    expect(stats.l1.entries).toBe(1);
    await view.get('a');
    expect(cache.stats().hitRate).toBe(1);
  });

  it('count what the README says a lookup is: one per key of getMany, getOrSetMany and warm, none for getLocal or ttl; a getOrSetMany batch is one factory run', async () => {
    const cache = new Cache({ ttlMs: 60_000 });
    await cache.set('a', 1);
    cache.getLocal('a');
    cache.getLocal('absent');
    // ttl is a look, not a read (README, "How long a key has left").
    await cache.ttl('a');
    await cache.ttl('absent');
    expect(cache.stats().hits.l1 + cache.stats().misses).toBe(0);
    await cache.getMany(['a', 'b']);
    expect(cache.stats()).toMatchObject({ hits: { l1: 1, l2: 0 }, misses: 1 });
    cache.resetStats();
    await cache.getOrSetMany(['a', 'c', 'd'], (missing) => missing.map((key) => key.length));
    expect(cache.stats()).toMatchObject({ hits: { l1: 1 }, misses: 2, factoryRuns: 1 });
    cache.resetStats();
    await cache.warm(['a', 'e'], (key) => key);
    expect(cache.stats()).toMatchObject({ hits: { l1: 1 }, misses: 1, factoryRuns: 1 });
    await cache.close();
  });
});
