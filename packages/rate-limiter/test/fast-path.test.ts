import { ClosedError, ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { inPlaceAlgorithms } from '../src/algorithms/index.js';
import { windowStartOf } from '../src/algorithms/window-start.js';
import type { AutoBlockPolicy } from '../src/auto-block.js';
import {
  algorithmNames,
  algorithms,
  type ConsumeOutcome,
  createRateLimiter,
  InvalidCostError,
  type LimitPolicy,
  MemoryStore,
  type RateLimitStore,
  SyncCheckUnsupportedError,
} from '../src/index.js';
import { type AlgorithmName, capacityOf } from '../src/policy.js';
import { policyArb } from './policy-arbitrary.js';

const start = 1_700_000_000_000;

/** A policy of `algorithm`; a leaky bucket sometimes queues (policyArb never does). */
const inPlacePolicyArb = (algorithm: AlgorithmName) =>
  algorithm === 'leaky-bucket'
    ? fc
        .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }))
        .map(([policy, queueMaxDelayMs]) => ({ ...policy, queueMaxDelayMs }))
    : policyArb(algorithm);

/**
 * A state some earlier requests of `policy` may have left at about `begin` (and some no sequence
 * reaches: counts over the limit, a bucket last updated in the future), so agreement does not
 * depend on how the state was reached.
 */
function startStateArb(algorithm: AlgorithmName, policy: LimitPolicy, begin: number): fc.Arbitrary<unknown> {
  const window = policy.windowMs;
  const alignedAt = (windows: number) => begin - (begin % window) + windows * window;
  const count = fc.integer({ min: 0, max: policy.limit + 2 });
  const updatedAt = fc.integer({ min: begin - 4_000, max: begin + 1_000 });
  switch (algorithm) {
    case 'fixed-window':
      return fc.record({ windowStart: fc.integer({ min: -2, max: 1 }).map(alignedAt), count });
    case 'sliding-window':
      return fc.record({
        windowStart: fc.integer({ min: -3, max: 1 }).map(alignedAt),
        current: count,
        previous: count,
      });
    case 'sliding-log':
      // Times ascending (as admitted), some already out of the window; each entry costs 1 to 3.
      return fc
        .array(fc.tuple(fc.integer({ min: -2 * window, max: 1_000 }), fc.integer({ min: 1, max: 3 })), {
          maxLength: policy.limit + 2,
        })
        .map((entries) => {
          entries.sort(([a], [b]) => a - b);
          return { times: entries.map(([offset]) => begin + offset), costs: entries.map(([, cost]) => cost) };
        });
    case 'token-bucket':
      return fc.record({ tokens: fc.integer({ min: 0, max: capacityOf(policy) * window }), updatedAt });
    case 'leaky-bucket':
      return fc.record({
        level: fc.integer({
          min: 0,
          max: capacityOf(policy) * window + (policy.queueMaxDelayMs ?? 0) * policy.limit,
        }),
        updatedAt,
      });
  }
}

const stepsArb = fc.array(
  fc.record({
    // Negative gaps: a clock that goes back (another server's) must not split the two either.
    gap: fc.integer({ min: -500, max: 2_500 }),
    cost: fc.integer({ min: 0, max: 3 }),
    which: fc.integer({ min: 0, max: 1 }),
  }),
  { minLength: 1, maxLength: 150 },
);

describe('in-place steps', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: decides as the pure step and leaves the state it would keep (two policies interleaved)`, () => {
      const inPlace = inPlaceAlgorithms[algorithm];
      const pure = algorithms[algorithm];
      const caseArb = fc
        .tuple(
          inPlacePolicyArb(algorithm),
          inPlacePolicyArb(algorithm),
          fc.integer({ min: -5_000, max: 1_900_000_000_000 }),
        )
        .chain(([first, second, begin]) =>
          fc.record({
            policies: fc.constant([first, second]),
            begin: fc.constant(begin),
            // undefined: a key never seen (the pure step gets undefined, the in-place one newState).
            starts: fc.tuple(
              fc.option(startStateArb(algorithm, first, begin), { nil: undefined }),
              fc.option(startStateArb(algorithm, second, begin), { nil: undefined }),
            ),
            steps: stepsArb,
          }),
        );
      fc.assert(
        fc.property(caseArb, ({ policies, begin, starts, steps }) => {
          const kept: unknown[] = [...starts];
          const mutable = starts.map((start, which) =>
            start === undefined ? inPlace.newState(begin, policies[which]!) : structuredClone(start),
          );
          let now = begin;
          for (const { gap, cost, which } of steps) {
            now += gap;
            const policy = policies[which]!;
            const expected = pure.step(kept[which], now, cost, policy);
            const before = structuredClone(mutable[which]);
            const decision = inPlace.step(mutable[which], now, cost, policy);
            expect(decision).toEqual(expected.decision);
            if (expected.decision.allowed) {
              kept[which] = expected.state;
              expect(mutable[which]).toEqual(expected.state);
              expect(inPlace.ttlMs(mutable[which], now, policy)).toBe(
                pure.ttlMs(expected.state, now, policy),
              );
            } else {
              expect(mutable[which]).toEqual(before);
            }
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it('windowStartOf equals now - now % windowMs, memo or not', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.oneof(fc.integer({ min: -100_000, max: 100_000 }), fc.integer({ min: 0, max: 2 ** 45 })),
            fc.integer({ min: 1, max: 100_000 }),
          ),
          { minLength: 1, maxLength: 50 },
        ),
        (calls) => {
          for (const [now, windowMs] of calls) {
            expect(windowStartOf(now, windowMs)).toBe(now - (now % windowMs));
            expect(windowStartOf(now + 0.5, windowMs)).toBe(now + 0.5 - ((now + 0.5) % windowMs));
            // The memo's edges: the next window starts exactly at the end of this one.
            const next = now - (now % windowMs) + windowMs;
            expect(windowStartOf(next - 1, windowMs)).toBe(next - 1 - ((next - 1) % windowMs));
            expect(windowStartOf(next, windowMs)).toBe(next - (next % windowMs));
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('MemoryStore.consumeSingle', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: same decisions as the pure algorithm on kept-until-expiry state, over keys and namespaces`, () => {
      fc.assert(
        fc.property(
          policyArb(algorithm),
          fc.array(
            fc.record({
              gap: fc.integer({ min: 0, max: 2_500 }),
              cost: fc.integer({ min: 0, max: 3 }),
              key: fc.constantFrom('a', 'b', 'c'),
              namespace: fc.constantFrom('x:', 'y:'),
            }),
            { minLength: 1, maxLength: 120 },
          ),
          (policy, requests) => {
            const clock = new ManualClock(start);
            const store = new MemoryStore({ clock });
            const model = new Map<string, { state: unknown; expiresAt: number }>();
            const { step, ttlMs } = algorithms[algorithm];
            for (const { gap, cost, key, namespace } of requests) {
              clock.advance(gap);
              const now = clock.now();
              const kept = model.get(namespace + key);
              const state = kept !== undefined && kept.expiresAt > now ? kept.state : undefined;
              const expected = step(state, now, cost, policy);
              if (expected.decision.allowed)
                model.set(namespace + key, {
                  state: expected.state,
                  expiresAt: now + Math.max(1, ttlMs(expected.state, now, policy)),
                });
              expect(store.consumeSingle(key, policy, cost, namespace)).toEqual(expected.decision);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});

describe('MemoryStore.consumeHot', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: decides as consumeSingle does (two stores, the same checks) or declines, counting nothing`, () => {
      let hot = 0;
      fc.assert(
        fc.property(
          // Larger limits and windows too, where most checks are a live key's next point.
          fc.oneof(
            policyArb(algorithm),
            policyArb(algorithm).map((policy) => ({
              ...policy,
              limit: policy.limit * 20,
              windowMs: policy.windowMs * 20,
            })),
          ),
          // Around 0 too: a window start below 0 is not taken as aligned by the hot path.
          fc.constantFrom(start, 0, -1_000, 1_000),
          fc.array(
            fc.record({
              // Negative gaps: a clock that goes back; gaps past 1 s make a move due.
              gap: fc.oneof(
                { arbitrary: fc.integer({ min: -300, max: 60 }), weight: 4 },
                { arbitrary: fc.integer({ min: 0, max: 2_500 }), weight: 1 },
              ),
              cost: fc.integer({ min: 0, max: 3 }),
              key: fc.constantFrom('a', 'b', 'c'),
              namespace: fc.constantFrom('x:', 'y:'),
              viaHot: fc.boolean(),
            }),
            { minLength: 20, maxLength: 120 },
          ),
          (policy, begin, requests) => {
            // A clock that may go back (ManualClock refuses to).
            let now = begin;
            const clock = { now: () => now };
            const store = new MemoryStore({ clock });
            // The reference: the same checks, all through consumeSingle.
            const reference = new MemoryStore({ clock });
            const tokens = { 'x:': { namespace: 'x:' }, 'y:': { namespace: 'y:' } };
            for (const { gap, cost, key, namespace, viaHot } of requests) {
              now += gap;
              // The hot path takes one point only, as the limiter's check(key) asks.
              const points = viaHot ? 1 : cost;
              const expected = reference.consumeSingle(key, policy, points, namespace);
              let decision = viaHot ? store.consumeHot(key, policy, tokens[namespace]) : undefined;
              if (decision !== undefined) hot += 1;
              decision ??= store.consumeSingle(key, policy, points, namespace);
              expect(decision).toEqual(expected);
            }
          },
        ),
        { numRuns: 100 },
      );
      // The hot path decided some checks of a fixed window, and none of another algorithm.
      if (algorithm === 'fixed-window') expect(hot).toBeGreaterThan(100);
      else expect(hot).toBe(0);
    });
  }

  it('finds a namespace dropped and made again (reset, eviction) through the same token', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock, maxKeys: 1 });
    const policy: LimitPolicy = { name: 'default', algorithm: 'fixed-window', limit: 10, windowMs: 60_000 };
    const token = { namespace: 'x:' };
    expect(store.consumeSingle('a', policy, 1, 'x:')?.remaining).toBe(9);
    expect(store.consumeHot('a', policy, token)?.remaining).toBe(8);
    store.resetAllSync(['x:']);
    // The old namespace's entries are gone: the hot path declines, the general path starts afresh.
    expect(store.consumeHot('a', policy, token)).toBeUndefined();
    expect(store.consumeSingle('a', policy, 1, 'x:')?.remaining).toBe(9);
    expect(store.consumeHot('a', policy, token)?.remaining).toBe(8);
    // A key of another namespace evicts 'a' (the cap is 1 key), and 'x:', empty, is dropped.
    store.consumeSingle('b', policy, 1, 'y:');
    expect(store.consumeHot('a', policy, token)).toBeUndefined();
    expect(store.consumeSingle('a', policy, 1, 'x:')?.remaining).toBe(9);
    expect(store.consumeHot('a', policy, token)?.remaining).toBe(8);
  });
});

/** An auto-block that never blocks: it sends `consumeOne` down the general path and nothing else. */
const neverBlocks: AutoBlockPolicy = {
  violations: 1_000_000,
  withinMs: 1_000,
  blockMs: 1_000,
  multiplier: 2,
  maxBlockMs: 1_000,
  forgetAfterMs: 1_000,
};

describe('MemoryStore single and general paths on the same keys', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: each path reads the state the other left (in place or replaced)`, () => {
      fc.assert(
        fc.property(
          policyArb(algorithm),
          fc.array(
            fc.record({
              gap: fc.integer({ min: 0, max: 2_500 }),
              // Up to 4: a new key's first request can be refused (the general path then keeps
              // an entry for its block state with no limit state in it).
              cost: fc.integer({ min: 0, max: 4 }),
              key: fc.constantFrom('a', 'b'),
              general: fc.boolean(),
            }),
            { minLength: 1, maxLength: 120 },
          ),
          (policy, requests) => {
            const clock = new ManualClock(start);
            const store = new MemoryStore({ clock });
            const kept = new Map<string, unknown>();
            const { step } = algorithms[algorithm];
            for (const { gap, cost, key, general } of requests) {
              clock.advance(gap);
              // State past its ttl reads as a new key's, so the model need not expire it.
              const expected = step(kept.get(key), clock.now(), cost, policy);
              if (expected.decision.allowed) kept.set(key, expected.state);
              const decision = general
                ? store.consumeOne(key, [policy], cost, neverBlocks).decisions[0]
                : store.consumeSingle(key, policy, cost);
              expect(decision).toEqual(expected.decision);
            }
          },
        ),
        { numRuns: 60 },
      );
    });
  }
});

/** A stand-in remote store that never answers: `checkSync` must refuse it. */
class HangingStore implements RateLimitStore {
  readonly kind = 'hanging';
  readonly remote = true;
  consume(): Promise<ConsumeOutcome[]> {
    return new Promise(() => {});
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('RateLimiter.checkSync', () => {
  it('returns what check() resolves to, for single and several limits, roles, lists and costs', async () => {
    const options = (clock: ManualClock) =>
      createRateLimiter({
        limits: [{ limit: 3, windowMs: 1_000 }],
        roles: {
          multi: [
            { limit: 2, windowMs: 1_000 },
            { algorithm: 'token-bucket', limit: 5, windowMs: 10_000 },
          ],
          root: 'unlimited',
        },
        deny: ['10.0.0.1'],
        clock,
      });
    const clockA = new ManualClock(start);
    const clockB = new ManualClock(start);
    const viaPromise = options(clockA);
    const viaSync = options(clockB);
    const inputs = [
      'k',
      'k',
      { key: 'k', cost: 2 },
      'k',
      { key: 'm', role: 'multi' },
      { key: 'm', role: 'multi' },
      { key: 'm', role: 'multi' },
      { key: 'r', role: 'root' },
      { key: 'd', ip: '10.0.0.1' },
      { key: 'k', cost: 0 },
    ];
    for (let round = 0; round < 3; round += 1) {
      for (const input of inputs) expect(viaSync.checkSync(input)).toEqual(await viaPromise.check(input));
      clockA.advance(700);
      clockB.advance(700);
    }
    await viaPromise.close();
    await viaSync.close();
  });

  it('throws where check() rejects, and for a remote store', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 1_000 }] });
    expect(() => limiter.checkSync({ key: 'k', cost: 1.5 })).toThrow(InvalidCostError);
    await expect(limiter.check({ key: 'k', cost: -1 })).rejects.toThrow(InvalidCostError);
    await limiter.close();
    expect(() => limiter.checkSync('k')).toThrow(ClosedError);
    await expect(limiter.check('k')).rejects.toThrow(ClosedError);

    const remote = createRateLimiter({
      store: new HangingStore(),
      limits: [{ limit: 3, windowMs: 1_000 }],
      deny: ['10.0.0.1'],
    });
    expect(() => remote.checkSync('k')).toThrow(SyncCheckUnsupportedError);
    expect(() => remote.checkSync({ key: 'k', ip: '10.0.0.1' })).toThrow(SyncCheckUnsupportedError);
    expect(() => remote.checkSync('k')).toThrow(
      expect.objectContaining({ code: 'NOA_RATE_LIMIT_SYNC_UNSUPPORTED' }),
    );
    await remote.close();
  });
});
