import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput } from '../src/index.js';
import { expressApp, fastifyApp } from './http-apps.js';

// A bucket whose burst differs from its limit admits `burst` at once but only `limit` per window
// after that. Its `RateLimit-Policy` must state what a client can rely on: a client that sends what
// q and w say (q every w seconds, after spending the burst it was told of) is never refused.

const start = 1_700_000_000_000;

/** One `RateLimit-Policy` list member, as this package writes it. */
function parsePolicy(field: string): { name: string; q: number; w: number; burst: number | undefined } {
  const match = /^"([^"]+)";q=(\d+);w=(\d+)(?:;noa-burst=(\d+))?$/.exec(field);
  if (match === null) throw new Error(`unexpected RateLimit-Policy ${field}`);
  return {
    name: match[1]!,
    q: Number(match[2]),
    w: Number(match[3]),
    burst: match[4] === undefined ? undefined : Number(match[4]),
  };
}

const cases: { limit: LimitInput; policy: string; rateLimit: string }[] = [
  // 10 per second with a burst of 100: q=100;w=1 would promise ten times the sustained rate.
  {
    limit: { name: 'api', algorithm: 'token-bucket', limit: 10, windowMs: 1_000, burst: 100 },
    policy: '"api";q=10;w=1;noa-burst=100',
    rateLimit: '"api";r=99;t=1',
  },
  {
    limit: { name: 'api', algorithm: 'leaky-bucket', limit: 10, windowMs: 1_000, burst: 100 },
    policy: '"api";q=10;w=1;noa-burst=100',
    rateLimit: '"api";r=99;t=1',
  },
  // 100 per minute that never holds more than 10: 100 at once is refused; 10 per 6 s is the rate.
  {
    limit: { name: 'api', algorithm: 'token-bucket', limit: 100, windowMs: 60_000, burst: 10 },
    policy: '"api";q=10;w=6',
    rateLimit: '"api";r=9;t=1',
  },
  {
    limit: { name: 'api', algorithm: 'leaky-bucket', limit: 100, windowMs: 60_000, burst: 10 },
    policy: '"api";q=10;w=6',
    rateLimit: '"api";r=9;t=1',
  },
];

describe.each([
  { framework: 'Express', serve: expressApp },
  { framework: 'Fastify', serve: fastifyApp },
])('$framework RateLimit-Policy of a bucket whose burst differs from its limit', ({ serve }) => {
  it.each(cases)(
    '$limit.algorithm $limit.limit per $limit.windowMs ms, burst $limit.burst: $policy',
    async ({ limit, policy, rateLimit }) => {
      const clock = new ManualClock(start);
      const limiter = createRateLimiter({ limits: [limit], clock });
      const app = await serve(limiter);
      try {
        const first = await fetch(app.base);
        expect(first.status).toBe(200);
        expect(first.headers.get('ratelimit-policy')).toBe(policy);
        expect(first.headers.get('ratelimit')).toBe(rateLimit);
        const { q, w, burst } = parsePolicy(policy);
        // What the client was told it may send at once: the burst, else q; the first request is one.
        const statuses: number[] = [];
        const send = async (count: number) => {
          const responses = await Promise.all(Array.from({ length: count }, () => fetch(app.base)));
          for (const response of responses) {
            statuses.push(response.status);
            await response.arrayBuffer();
          }
        };
        await send((burst ?? q) - 1);
        // Then q every w seconds, as the policy states, for a while: none refused.
        for (let round = 0; round < 5; round += 1) {
          clock.advance(w * 1_000);
          await send(q);
        }
        expect(statuses.filter((status) => status !== 200)).toEqual([]);
        // And the policy is not an understatement by more than the second rounding: one more
        // request now, at the same instant, is refused.
        const over = await fetch(app.base);
        expect(over.status).toBe(429);
      } finally {
        await app.close();
        await limiter.close();
      }
    },
  );
});

// express-rate-limit's draft-6 and draft-7 fields (`headers.draft`) carry a `RateLimit-Policy` of
// their own, `<quota>;w=<seconds>`: the same promise, so the same rule. It stated the bucket's
// capacity per window (`100;w=1` for 10 per second with a burst of 100), ten times the rate.
const olderDraftCases = cases.map(({ limit, policy }) => ({
  limit,
  policy: policy.replace(/^"api";q=/, ''),
}));

describe.each([
  { framework: 'Express', serve: expressApp },
  { framework: 'Fastify', serve: fastifyApp },
])(
  '$framework draft-6 and draft-7 RateLimit-Policy of a bucket whose burst differs from its limit',
  ({ serve }) => {
    it.each(
      olderDraftCases.flatMap((row) => (['draft-6', 'draft-7'] as const).map((draft) => ({ ...row, draft }))),
    )(
      '$draft: $limit.algorithm $limit.limit per $limit.windowMs ms, burst $limit.burst: $policy',
      async ({ limit, policy, draft }) => {
        const clock = new ManualClock(start);
        const limiter = createRateLimiter({ limits: [limit], clock });
        const app = await serve(limiter, { headers: { draft } });
        try {
          const first = await fetch(app.base);
          expect(first.status).toBe(200);
          expect(first.headers.get('ratelimit-policy')).toBe(policy);
          const { q, w, burst } = parsePolicy(`"api";q=${policy}`);
          // The limit these drafts state beside it is what the bucket holds, as `remaining` counts it.
          const capacity = String(limit.burst ?? limit.limit);
          if (draft === 'draft-6') expect(first.headers.get('ratelimit-limit')).toBe(capacity);
          else expect(first.headers.get('ratelimit')).toMatch(new RegExp(`^limit=${capacity}, remaining=`));
          const statuses: number[] = [];
          const send = async (count: number) => {
            const responses = await Promise.all(Array.from({ length: count }, () => fetch(app.base)));
            for (const response of responses) {
              statuses.push(response.status);
              await response.arrayBuffer();
            }
          };
          await send((burst ?? q) - 1);
          for (let round = 0; round < 5; round += 1) {
            clock.advance(w * 1_000);
            await send(q);
          }
          expect(statuses.filter((status) => status !== 200)).toEqual([]);
        } finally {
          await app.close();
          await limiter.close();
        }
      },
    );
  },
);
