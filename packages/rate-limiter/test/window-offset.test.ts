import { ConfigError, ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput, MemoryStore } from '../src/index.js';
import type { LimitPolicy } from '../src/policy.js';
import { keyWindowOffset, windowOffsetOf } from '../src/window-offset.js';

// Windows start at k × windowMs + offset: a model of that, apart from the code under test, and the
// memory store (and the limiter on it, each of its paths) checked against it.

const startArb = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });
const requestsArb = fc.array(
  fc.record({ gap: fc.integer({ min: 0, max: 1_500 }), cost: fc.integer({ min: 0, max: 3 }) }),
  { minLength: 1, maxLength: 100 },
);
/** A window limit with an offset (0 ≤ offset < windowMs). */
const offsetPolicyArb = (algorithm: 'fixed-window' | 'sliding-window') =>
  fc
    .record({ limit: fc.integer({ min: 1, max: 12 }), windowMs: fc.integer({ min: 2, max: 3_000 }) })
    .chain(({ limit, windowMs }) =>
      fc.record({
        name: fc.constant('p'),
        algorithm: fc.constant(algorithm),
        limit: fc.constant(limit),
        windowMs: fc.constant(windowMs),
        windowOffsetMs: fc.integer({ min: 1, max: windowMs - 1 }),
      }),
    ) as fc.Arbitrary<LimitPolicy & { windowOffsetMs: number }>;

/** The index of the offset-aligned window holding `time`. */
const windowOf = (time: number, windowMs: number, offset: number) => Math.floor((time - offset) / windowMs);

interface Step {
  now: number;
  cost: number;
  allowed: boolean;
  resetMs: number;
}

/** Runs the requests through a fresh memory store at the times they give. */
function runStore(policy: LimitPolicy, start: number, requests: { gap: number; cost: number }[], key = 'k') {
  const clock = new ManualClock(start);
  const store = new MemoryStore({ clock });
  const steps: Step[] = [];
  for (const { gap, cost } of requests) {
    clock.advance(gap);
    const decision = store.consumeOne(key, [policy], cost, undefined).decisions[0]!;
    steps.push({ now: clock.now(), cost, allowed: decision.allowed, resetMs: decision.resetMs });
  }
  return steps;
}

describe('windowOffsetMs: windows start at k × windowMs + offset', () => {
  it('fixed window matches the offset model exactly: admissions, and the reset at the next k × windowMs + offset', () => {
    fc.assert(
      fc.property(offsetPolicyArb('fixed-window'), startArb, requestsArb, (policy, start, requests) => {
        const used = new Map<number, number>();
        for (const step of runStore(policy, start, requests)) {
          const window = windowOf(step.now, policy.windowMs, policy.windowOffsetMs);
          const count = used.get(window) ?? 0;
          const expected = count + step.cost <= policy.limit;
          expect(step.allowed).toBe(expected);
          if (expected) used.set(window, count + step.cost);
          const counted = used.get(window) ?? 0;
          // The whole quota is back where the next offset-aligned window starts.
          const end = (window + 1) * policy.windowMs + policy.windowOffsetMs;
          if (counted > 0) expect(step.now + step.resetMs).toBe(end);
        }
      }),
    );
  });

  it('sliding window matches the weighted model on offset windows and admits at most the limit in each', () => {
    fc.assert(
      fc.property(offsetPolicyArb('sliding-window'), startArb, requestsArb, (policy, start, requests) => {
        const { windowMs, windowOffsetMs: offset } = policy;
        const counts = new Map<number, number>();
        for (const step of runStore(policy, start, requests)) {
          const window = windowOf(step.now, windowMs, offset);
          const previous = counts.get(window - 1) ?? 0;
          const current = counts.get(window) ?? 0;
          const elapsed = step.now - (window * windowMs + offset);
          const estimate = (previous * (windowMs - elapsed)) / windowMs + current;
          const expected = estimate + step.cost <= policy.limit + 1e-9;
          expect(step.allowed).toBe(expected);
          if (expected) counts.set(window, current + step.cost);
          // With a count in the current window, the quota is all back two windows after its start.
          if ((counts.get(window) ?? 0) > 0)
            expect(step.now + step.resetMs).toBe((window + 2) * windowMs + offset);
        }
        for (const sum of counts.values()) expect(sum).toBeLessThanOrEqual(policy.limit);
      }),
    );
  });

  it("the limiter's paths (check's, checkSync's, several limits, auto-block) decide as the store does", async () => {
    const start = 1_700_000_000_000;
    const limits: LimitInput[] = [{ limit: 3, windowMs: 10_000, windowOffsetMs: 7_000 }];
    const clock = new ManualClock(start);
    const variants = [
      createRateLimiter({ limits, clock }),
      createRateLimiter({ limits: [...limits, { limit: 100, windowMs: 60_000 }], clock }),
      createRateLimiter({ limits, clock, autoBlock: { violations: 100, withinMs: 1_000, blockMs: 1_000 } }),
    ];
    // start is 0 mod 10 s: the window of offset 7 s ends at start + 7 s.
    const seen: string[][] = variants.map(() => []);
    for (const gap of [0, 1_000, 1_000, 1_000, 3_999, 1, 1_000, 1_000, 1_000]) {
      clock.advance(gap);
      for (const [index, limiter] of variants.entries()) {
        const result = index === 0 ? await limiter.check('key') : limiter.checkSync('key');
        const first = result.limits[0]!;
        seen[index]!.push(`${result.allowed ? 'y' : 'n'}@${clock.now() - start + first.resetMs}`);
      }
    }
    const expected = [
      'y@7000',
      'y@7000',
      'y@7000',
      'n@7000',
      'n@7000',
      'y@17000',
      'y@17000',
      'y@17000',
      'n@17000',
    ];
    for (const each of seen) expect(each).toEqual(expected);
    for (const limiter of variants) await limiter.close();
  });

  it('refund and penalize count in the offset window: a refund after its end changes nothing', () => {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new MemoryStore({ clock });
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'fixed-window',
      limit: 2,
      windowMs: 10_000,
      windowOffsetMs: 4_000,
    };
    store.consumeOne('k', [policy], 2, undefined);
    clock.advance(3_999);
    expect(
      store.adjust('k', [policy], { operation: 'refund', points: 1 }, undefined).decisions[0]!.remaining,
    ).toBe(1);
    clock.advance(1);
    // The window of offset 4 s ended: a fresh one, which a late refund does not touch.
    const after = store.adjust('k', [policy], { operation: 'refund', points: 1 }, undefined).decisions[0]!;
    expect(after.remaining).toBe(2);
    const penalized = store.adjust('k', [policy], { operation: 'penalize', points: 5 }, undefined)
      .decisions[0]!;
    expect({ remaining: penalized.remaining, resetMs: penalized.resetMs }).toEqual({
      remaining: 0,
      resetMs: 10_000,
    });
  });

  it("'key' gives each key its own offset, the same one for the same key, spread over the window", () => {
    const windowMs = 60_000;
    const offsets = new Set<number>();
    for (let index = 0; index < 200; index += 1) {
      const offset = keyWindowOffset(`rl:default:abc:user-${index}`, windowMs);
      expect(Number.isInteger(offset) && offset >= 0 && offset < windowMs).toBe(true);
      expect(keyWindowOffset(`rl:default:abc:user-${index}`, windowMs)).toBe(offset);
      offsets.add(Math.floor(offset / 6_000));
    }
    // 200 keys over ten tenths of the window: every tenth has some.
    expect(offsets.size).toBe(10);
    // A year's window is spread over too (the hash has 53 bits, not 32).
    expect(keyWindowOffset('k', 365 * 86_400_000)).toBeLessThan(365 * 86_400_000);
  });

  it("'key': a key's windows end at its own offset, of the limiter's namespaced key", () => {
    const start = 1_700_000_000_000;
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'fixed-window',
      limit: 1,
      windowMs: 60_000,
      windowOffsetMs: 'key',
    };
    const ends = new Set<number>();
    for (const key of ['a', 'b', 'c', 'd']) {
      const offset = windowOffsetOf(policy, `ns:${key}`);
      const decision = store.consumeOne(key, [policy], 1, undefined, 'ns:').decisions[0]!;
      const end = start + decision.resetMs;
      expect((end - offset) % 60_000).toBe(0);
      ends.add(end);
      // The same key through the store interface's full key: the same window.
      expect(store.consumeOne(`ns:${key}`, [policy], 0, undefined).decisions[0]!.resetMs).toBe(0);
    }
    expect(ends.size).toBeGreaterThan(1);
  });

  it('two limiters writing one rule with different offsets conflict, and the error says so', async () => {
    const store = new MemoryStore();
    const first = createRateLimiter({
      store,
      limits: [{ limit: 5, windowMs: 60_000, windowOffsetMs: 1_000 }],
    });
    expect(() =>
      createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000, windowOffsetMs: 'key' }] }),
    ).toThrow(/offset 1000 ms[\s\S]*this one: [^)]*offset per key/);
    await first.close();
    // An offset of 0 is no offset: the same limits, no conflict.
    const zero = createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000, windowOffsetMs: 0 }] });
    const plain = createRateLimiter({ store, limits: [{ limit: 5, windowMs: 60_000 }] });
    await plain.close();
    await zero.close();
  });

  it('an offset of 0 is the epoch grid; out of range, or on an algorithm without windows, is a ConfigError naming windowOffsetMs', () => {
    const fields = (limit: LimitInput) => {
      try {
        createRateLimiter({ limits: [limit] });
        return undefined;
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).fields;
      }
    };
    expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 0 })).toBeUndefined();
    expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 999 })).toBeUndefined();
    expect(
      fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 'key', algorithm: 'sliding-window' }),
    ).toBeUndefined();
    expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 1_000 })).toEqual(['limits.0.windowOffsetMs']);
    expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: -1 })).toEqual(['limits.0.windowOffsetMs']);
    expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 1.5 })).toEqual(['limits.0.windowOffsetMs']);
    for (const algorithm of ['sliding-log', 'token-bucket', 'leaky-bucket'] as const)
      expect(fields({ limit: 1, windowMs: 1_000, windowOffsetMs: 'key', algorithm })).toEqual([
        'limits.0.windowOffsetMs',
      ]);
  });
});
