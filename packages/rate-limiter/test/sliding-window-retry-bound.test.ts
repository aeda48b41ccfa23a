import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { algorithms } from '../src/algorithms/index.js';
import type { LimitPolicy } from '../src/policy.js';

const { step } = algorithms['sliding-window'];
const start = 1_700_000_000_123;

/**
 * A refusal's retryAfterMs is the first instant the cost fits: exact (admitted then, refused one
 * millisecond before) while limit × windowMs is at most 2^53 − 1, the bound the README's
 * algorithm section states. Past it (a quota of bytes per day: 10^11 × 86,400,000) the weights
 * are rounded, and the retry time is never early and at most 1 ms late (it was up to 1 ms early:
 * a client retrying at it was refused once).
 */
function refusals(policy: LimitPolicy, requests: { gap: number; cost: number }[]) {
  const found: { state: unknown; now: number; cost: number; retry: number }[] = [];
  let state: unknown;
  let now = start;
  for (const request of requests) {
    now += request.gap;
    const { decision, state: next } = step(state, now, request.cost, policy);
    if (decision.allowed) state = next;
    else if (request.cost <= policy.limit && decision.retryAfterMs > 0)
      found.push({ state, now, cost: request.cost, retry: decision.retryAfterMs });
  }
  return found;
}

describe('sliding window retryAfterMs', () => {
  it('is exact while limit × windowMs is at most 2^53 − 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }).chain((windowMs) =>
          fc.record({
            windowMs: fc.constant(windowMs),
            limit: fc.oneof(
              fc.integer({ min: 1, max: 20 }),
              fc.integer({ min: 1, max: Math.floor(Number.MAX_SAFE_INTEGER / windowMs) }),
              fc.constant(Math.floor(Number.MAX_SAFE_INTEGER / windowMs)),
            ),
          }),
        ),
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 200_000 }),
            cost: fc.integer({ min: 0, max: 2 ** 53 }),
          }),
          { minLength: 1, maxLength: 30 },
        ),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 30 }),
        ({ windowMs, limit }, big, small) => {
          const policy: LimitPolicy = { name: 'p', algorithm: 'sliding-window', limit, windowMs };
          const requests = big.map((request, index) => ({
            gap: request.gap,
            cost: limit <= 20 ? small[index % small.length]! : request.cost % (limit + 2),
          }));
          for (const { state, now, cost, retry } of refusals(policy, requests)) {
            expect(step(state, now + retry, cost, policy).decision.allowed).toBe(true);
            expect(step(state, now + retry - 1, cost, policy).decision.allowed).toBe(false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is never early and at most 1 ms late past 2^53 (a window nearly full)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2 ** 40, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 1_000 })),
        fc.integer({ min: 1, max: 2_000 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 99_999 })),
        (limit, windowMs, previousShare, left, cost, elapsed) => {
          fc.pre(limit * windowMs > Number.MAX_SAFE_INTEGER);
          const policy: LimitPolicy = { name: 'p', algorithm: 'sliding-window', limit, windowMs };
          const windowStart = start - (start % windowMs);
          const previous = Math.floor(limit * previousShare);
          const filled = step(undefined, windowStart, previous, policy);
          const now = windowStart + windowMs + (elapsed % windowMs);
          const current = step(filled.state, now, Math.max(0, limit - previous - left), policy);
          const state = current.decision.allowed ? current.state : filled.state;
          const { decision } = step(state, now, cost, policy);
          fc.pre(!decision.allowed && decision.retryAfterMs > 0);
          expect(step(state, now + decision.retryAfterMs, cost, policy).decision.allowed).toBe(true);
          expect(step(state, now + decision.retryAfterMs - 2, cost, policy).decision.allowed).toBe(false);
        },
      ),
      { numRuns: 20_000 },
    );
  });
});
