import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { type Item, type List, parseList } from 'structured-headers';
import { describe, expect, it } from 'vitest';
import { algorithmNames, createRateLimiter, type LimitInput, rateLimitHeaders } from '../src/index.js';

// `RateLimit-Policy` and `RateLimit` are structured-field Lists (RFC 8941 / RFC 9651): parsed here
// by a real parser (structured-headers), not by a regular expression of what we write. An RFC 8941
// Integer has at most 15 digits, and q, w, r and t are Integers (draft-ietf-httpapi-ratelimit-headers-10).

const start = 1_700_000_000_000;
const maxSfInteger = 999_999_999_999_999;

/** Any valid limit: every algorithm, names of every allowed character, quotas and windows up to 2^53. */
const limitArb: fc.Arbitrary<LimitInput> = fc
  .record({
    name: fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
    algorithm: fc.constantFrom(...algorithmNames),
    limit: fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    windowMs: fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 1, max: 2 ** 40 })),
    burst: fc.option(fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: 2 ** 50 })), {
      nil: undefined,
    }),
  })
  .map(({ burst, ...limit }): LimitInput => {
    const bucket = limit.algorithm === 'token-bucket' || limit.algorithm === 'leaky-bucket';
    const sliding = limit.algorithm === 'sliding-log';
    const withBurst = bucket && burst !== undefined ? { ...limit, burst } : limit;
    // Keep to what the schema accepts: a sliding log of at most 10,000, a bucket within 2^53 points × ms.
    if (sliding) return { ...withBurst, limit: Math.min(withBurst.limit, 10_000) };
    if (bucket) {
      const capacity = (withBurst as { burst?: number }).burst ?? withBurst.limit;
      const windowMs = Math.max(
        1,
        Math.min(withBurst.windowMs, Math.floor(Number.MAX_SAFE_INTEGER / capacity)),
      );
      return { ...withBurst, windowMs };
    }
    return withBurst;
  });

function integerParam(item: Item, name: string): number {
  const value = item[1].get(name);
  expect(typeof value, `${name} of ${String(item[0])}`).toBe('number');
  expect(Number.isInteger(value), `${name} is an Integer`).toBe(true);
  return value as number;
}

function members(field: string | undefined): Item[] {
  expect(field).toBeDefined();
  const list: List = parseList(field!);
  for (const member of list) expect(Array.isArray(member[0]), 'an Item, not an Inner List').toBe(false);
  return list as Item[];
}

describe('RateLimit-Policy and RateLimit parse as RFC 8941 structured fields', () => {
  it('for any valid limits, at any quota and window: Items named by the limit, q, w, r, t Integers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(limitArb, { minLength: 1, maxLength: 3, selector: (limit) => limit.name }),
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 4 }),
        async (limits, costs) => {
          const clock = new ManualClock(start);
          const limiter = createRateLimiter({ limits, clock });
          try {
            for (const cost of costs) {
              const result = await limiter.check({ key: 'k', cost });
              const headers = rateLimitHeaders(result, {}, clock.now());
              const policies = members(headers['RateLimit-Policy']);
              const states = members(headers.RateLimit);
              expect(policies.map((item) => item[0])).toEqual(limits.map((limit) => limit.name));
              expect(states.map((item) => item[0])).toEqual(limits.map((limit) => limit.name));
              for (const policy of policies) {
                const q = integerParam(policy, 'q');
                expect(q).toBeGreaterThanOrEqual(1);
                expect(integerParam(policy, 'w')).toBeGreaterThanOrEqual(1);
                if (policy[1].has('noa-burst')) expect(integerParam(policy, 'noa-burst')).toBeGreaterThan(q);
              }
              for (const state of states) {
                expect(integerParam(state, 'r')).toBeGreaterThanOrEqual(0);
                expect(integerParam(state, 't')).toBeGreaterThanOrEqual(0);
              }
              clock.advance(997);
            }
          } finally {
            await limiter.close();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a quota beyond 15 digits is stated as the largest Integer there is (which understates it)', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ name: 'huge', algorithm: 'fixed-window', limit: Number.MAX_SAFE_INTEGER, windowMs: 1_000 }],
      clock,
    });
    const headers = rateLimitHeaders(await limiter.check('k'), {}, clock.now());
    await limiter.close();
    const [policy] = members(headers['RateLimit-Policy']);
    const [state] = members(headers.RateLimit);
    expect(integerParam(policy!, 'q')).toBe(maxSfInteger);
    expect(integerParam(state!, 'r')).toBe(maxSfInteger);
  });
});

describe('what RateLimit-Policy promises: q requests at once every w seconds are admitted', () => {
  const limitArb = fc.record({
    algorithm: fc.constantFrom(...algorithmNames),
    limit: fc.integer({ min: 1, max: 40 }),
    windowMs: fc.oneof(fc.integer({ min: 1, max: 1_500 }), fc.integer({ min: 1, max: 90_000 })),
    burst: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
  });

  it('for every algorithm, from any start (a sliding window: every 2w, its estimate weighs the window before)', async () => {
    await fc.assert(
      fc.asyncProperty(limitArb, fc.integer({ min: 0, max: 100_000 }), async (input, offset) => {
        const bucket = input.algorithm === 'token-bucket' || input.algorithm === 'leaky-bucket';
        const limit: LimitInput = {
          name: 'p',
          algorithm: input.algorithm,
          limit: input.limit,
          windowMs: input.windowMs,
          ...(bucket && input.burst !== undefined ? { burst: input.burst } : {}),
        };
        const clock = new ManualClock(start + offset);
        const limiter = createRateLimiter({ limits: [limit], clock });
        try {
          const first = await limiter.check('k');
          const [policy] = members(rateLimitHeaders(first, {}, clock.now())['RateLimit-Policy']);
          const q = integerParam(policy!, 'q');
          const w = integerParam(policy!, 'w');
          const burst = policy![1].has('noa-burst') ? integerParam(policy!, 'noa-burst') : q;
          const gapMs = (input.algorithm === 'sliding-window' ? 2 : 1) * w * 1_000;
          const refused: number[] = [];
          const send = async (count: number, round: number) => {
            for (let index = 0; index < count; index += 1)
              if (!(await limiter.check('k')).allowed) refused.push(round);
          };
          await send(burst - 1, 0);
          for (let round = 1; round <= 4; round += 1) {
            clock.advance(gapMs);
            await send(q, round);
          }
          expect(refused).toEqual([]);
        } finally {
          await limiter.close();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a sliding window refuses part of q sent again after w: the window before still weighs', async () => {
    const clock = new ManualClock(start + 300);
    const limiter = createRateLimiter({
      limits: [{ name: 'p', algorithm: 'sliding-window', limit: 10, windowMs: 1_000 }],
      clock,
    });
    const admitted = async () => {
      let count = 0;
      for (let index = 0; index < 10; index += 1) if ((await limiter.check('k')).allowed) count += 1;
      return count;
    };
    expect(await admitted()).toBe(10);
    clock.advance(1_000);
    // 300 ms into the next window, the one before weighs 70 %: 7 of the 10 count still.
    expect(await admitted()).toBe(3);
    await limiter.close();
  });
});
