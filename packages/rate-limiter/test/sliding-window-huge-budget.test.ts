import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { algorithms } from '../src/algorithms/index.js';
import type { LimitPolicy } from '../src/policy.js';

const { step } = algorithms['sliding-window'];
const start = 1_700_000_000_123;

/**
 * The sliding window weighs its counts in points × windowMs. Past 2^53 (a limit of
 * `Number.MAX_SAFE_INTEGER` as "unlimited", which the options accept for windows, or a long odd
 * window) that product is rounded: `limit × windowMs / windowMs` can come out below `limit`.
 */
describe('sliding window when limit × windowMs is beyond 2^53', () => {
  const policies: LimitPolicy[] = [
    { name: 'p', algorithm: 'sliding-window', limit: Number.MAX_SAFE_INTEGER, windowMs: 86_400_000 },
    { name: 'p', algorithm: 'sliding-window', limit: Number.MAX_SAFE_INTEGER, windowMs: 9 },
    { name: 'p', algorithm: 'sliding-window', limit: 123_456_789_012_345, windowMs: 1_000 },
    { name: 'p', algorithm: 'sliding-window', limit: 5, windowMs: 2_007_522_948_002_793 },
  ];

  for (const policy of policies) {
    it(`an unused key has its whole quota, with nothing to wait for (${policy.limit} per ${policy.windowMs} ms)`, () => {
      const { decision } = step(undefined, start, 0, policy);
      expect(decision.allowed).toBe(true);
      expect(decision.remaining).toBe(policy.limit);
      expect(decision.nextMs).toBe(0);
      expect(decision.resetMs).toBe(0);
    });
  }

  it('counts every point of the current window exactly while the previous one is empty', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...policies),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 20 }),
        (policy, costs) => {
          let state: unknown;
          let used = 0;
          for (const cost of costs) {
            const { decision, state: next } = step(state, start, cost, policy);
            expect(decision.allowed).toBe(used + cost <= policy.limit);
            if (!decision.allowed) continue;
            used += cost;
            state = next;
            expect(decision.remaining).toBe(policy.limit - used);
            expect(decision.nextMs).toBeLessThanOrEqual(decision.resetMs);
            expect(decision.nextMs === 0).toBe(used === 0);
          }
        },
      ),
    );
  });

  it('refuses a point beyond the limit in the current window (limit 2^53 − 1 reached)', () => {
    const policy = policies[0]!;
    const full = step(undefined, start, policy.limit, policy);
    expect(full.decision.allowed).toBe(true);
    expect(full.decision.remaining).toBe(0);
    const over = step(full.state, start, 1, policy);
    expect(over.decision.allowed).toBe(false);
    expect(over.decision.remaining).toBe(0);
  });
});

describe('sliding window penalty when limit × windowMs is beyond 2^53', () => {
  it('a penalty of the whole limit on an unused key leaves remaining 0', async () => {
    const { adjusters } = await import('../src/algorithms/index.js');
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'sliding-window',
      limit: Number.MAX_SAFE_INTEGER,
      windowMs: 86_400_000,
    };
    const state = adjusters['sliding-window'].penalize(undefined, start, policy.limit, policy);
    const { decision } = step(state, start, 0, policy);
    expect(decision.remaining).toBe(0);
    expect(step(state, start, 1, policy).decision.allowed).toBe(false);
  });
});

describe('sliding window at limits near 2^53, over two windows', () => {
  const policyArb = fc.record({
    limit: fc.oneof(
      fc.integer({ min: 2 ** 50, max: Number.MAX_SAFE_INTEGER }),
      fc.constant(Number.MAX_SAFE_INTEGER),
    ),
    windowMs: fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.constant(86_400_000)),
  });
  const requestsArb = fc.array(
    fc.record({
      gap: fc.integer({ min: 0, max: 200_000 }),
      cost: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 2 ** 48, max: 2 ** 53 })),
    }),
    { minLength: 1, maxLength: 40 },
  );

  it('counts at most the limit in every aligned window, and a refusal fits at now + retryAfterMs', () => {
    fc.assert(
      fc.property(policyArb, requestsArb, ({ limit, windowMs }, requests) => {
        const policy: LimitPolicy = { name: 'p', algorithm: 'sliding-window', limit, windowMs };
        let state: unknown;
        let now = start;
        const counted = new Map<number, number>();
        for (const request of requests) {
          now += request.gap;
          const { decision, state: next } = step(state, now, request.cost, policy);
          expect(decision.remaining).toBeGreaterThanOrEqual(0);
          expect(decision.remaining).toBeLessThanOrEqual(limit);
          if (decision.allowed) {
            state = next;
            const window = (next as { windowStart: number }).windowStart;
            counted.set(window, (counted.get(window) ?? 0) + request.cost);
            expect(counted.get(window)!).toBeLessThanOrEqual(limit);
            continue;
          }
          if (request.cost > limit) continue;
          expect(step(state, now + decision.retryAfterMs, request.cost, policy).decision.allowed).toBe(true);
        }
      }),
    );
  });
});
