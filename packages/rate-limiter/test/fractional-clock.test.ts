import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { algorithms } from '../src/algorithms/index.js';
import { type AlgorithmName, capacityOf, type LimitPolicy } from '../src/policy.js';
import { policyArb } from './policy-arbitrary.js';

// A `clock` option may read fractional milliseconds (`performance.timeOrigin + performance.now()`,
// a clock shared with tracing). algorithms.test.ts proves the bounds and exact retry times on
// integer times; here the same bounds hold on fractional ones, and a refused request fits at
// `now + retryAfterMs` (a fractional wait then: the time left to the boundary). Peers lost
// precision there: node-rate-limiter's fractional tokens (jhurliman/node-rate-limiter#61), GCRA
// rounding that let a request in early (Losant/redis-gcra#3).

interface Step {
  now: number;
  cost: number;
  before: unknown;
  allowed: boolean;
  retryAfterMs: number;
}

const requestsArb = (maxGap: number) =>
  fc.array(
    fc.record({
      gap: fc.oneof(fc.double({ min: 0, max: maxGap, noNaN: true }), fc.integer({ min: 0, max: maxGap })),
      cost: fc.integer({ min: 0, max: 3 }),
    }),
    { minLength: 1, maxLength: 100 },
  );
const startArb = fc.double({ min: 1_600_000_000_000, max: 1_900_000_000_000, noNaN: true });

function run(
  algorithm: AlgorithmName,
  policy: LimitPolicy,
  start: number,
  requests: { gap: number; cost: number }[],
) {
  const { step } = algorithms[algorithm];
  let state: unknown;
  let now = start;
  const steps: Step[] = [];
  for (const request of requests) {
    now += request.gap;
    const before = state;
    const { decision, state: after } = step(state, now, request.cost, policy);
    expect(decision.remaining).toBeGreaterThanOrEqual(0);
    expect(Number.isInteger(decision.remaining)).toBe(true);
    steps.push({
      now,
      cost: request.cost,
      before,
      allowed: decision.allowed,
      retryAfterMs: decision.retryAfterMs,
    });
    if (decision.allowed) state = after;
  }
  return steps;
}

/** Sum of the costs admitted in `[from, to]`. */
const admittedBetween = (admitted: Step[], from: number, to: number) =>
  admitted
    .filter((entry) => entry.now >= from && entry.now <= to)
    .reduce((sum, entry) => sum + entry.cost, 0);

describe('algorithms on a fractional clock', () => {
  for (const algorithm of ['fixed-window', 'sliding-window'] as const)
    it(`${algorithm}: at most the limit in every aligned window`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(1_500), (policy, start, requests) => {
          const used = new Map<number, number>();
          for (const entry of run(algorithm, policy, start, requests).filter((step) => step.allowed)) {
            const window = Math.floor(entry.now / policy.windowMs);
            used.set(window, (used.get(window) ?? 0) + entry.cost);
            expect(used.get(window)).toBeLessThanOrEqual(policy.limit);
          }
        }),
      );
    });

  it('sliding-log: at most the limit in every sliding window (now − windowMs, now]', () => {
    fc.assert(
      fc.property(policyArb('sliding-log'), startArb, requestsArb(1_500), (policy, start, requests) => {
        const admitted = run('sliding-log', policy, start, requests).filter((step) => step.allowed);
        for (const entry of admitted) {
          const inWindow = admitted.filter(
            (other) => other.now > entry.now - policy.windowMs && other.now <= entry.now,
          );
          expect(admittedBetween(inWindow, -Infinity, Infinity)).toBeLessThanOrEqual(policy.limit);
        }
      }),
    );
  });

  for (const algorithm of ['token-bucket', 'leaky-bucket'] as const)
    it(`${algorithm}: at most capacity + rate × elapsed in every interval`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(800), (policy, start, requests) => {
          const admitted = run(algorithm, policy, start, requests).filter((step) => step.allowed);
          for (let first = 0; first < admitted.length; first += 1)
            for (let last = first; last < admitted.length; last += 1) {
              const sum = admittedBetween(admitted.slice(first, last + 1), -Infinity, Infinity);
              const elapsed = admitted[last]!.now - admitted[first]!.now;
              // A double's rounding of the times is far below one request.
              expect(sum * policy.windowMs).toBeLessThanOrEqual(
                capacityOf(policy) * policy.windowMs + elapsed * policy.limit + 1e-3,
              );
            }
        }),
      );
    });

  for (const algorithm of [
    'fixed-window',
    'sliding-window',
    'sliding-log',
    'token-bucket',
    'leaky-bucket',
  ] as const)
    it(`${algorithm}: a refused request fits at now + retryAfterMs`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(400), (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          for (const refused of run(algorithm, policy, start, requests).filter((entry) => !entry.allowed)) {
            if (refused.cost > capacityOf(policy)) continue;
            const at = refused.now + refused.retryAfterMs;
            expect(step(refused.before, at, refused.cost, policy).decision.allowed).toBe(true);
          }
        }),
      );
    });
});
