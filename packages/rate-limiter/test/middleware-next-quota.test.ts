import { ManualClock } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type AlgorithmName, createRateLimiter, type RateLimiter } from '../src/index.js';
import { expressApp, fastifyApp } from './http-apps.js';

// draft-ietf-httpapi-ratelimit-headers-10 defines the RateLimit field's `t` as the seconds until
// additional quota is made available (no longer until the quota resets): a sliding window or a
// bucket frees a point long before its whole quota is back. A client that sees r=0 and waits `t`
// seconds must be admitted, and `t` must not make it wait longer than needed: a second earlier it
// is still refused. Over real HTTP, on both middlewares, with an injected clock.

/** 20 s into a 60 s window aligned to the epoch (fixed and sliding windows are). */
const start = 28_333_333 * 60_000 + 20_000;

/**
 * 5 per minute; one request at 20 s into the window, four more 10 s later. Then `t` is: the fixed
 * window's end (30 s); the sliding window's first instant the weighted count frees a point (12 s
 * into the next window: 42 s); the sliding log's oldest request leaving (50 s); the next whole
 * token, or the bucket leaking one request's room (one token refills every 12 s, 10 s of which
 * passed: 2 s). Until full, `X-RateLimit-Reset` (legacy) keeps: 30, 90, 60, 50 and 50 s.
 */
const cases: { algorithm: AlgorithmName; t: number; reset: number }[] = [
  { algorithm: 'fixed-window', t: 30, reset: 30 },
  { algorithm: 'sliding-window', t: 42, reset: 90 },
  { algorithm: 'sliding-log', t: 50, reset: 60 },
  { algorithm: 'token-bucket', t: 2, reset: 50 },
  { algorithm: 'leaky-bucket', t: 2, reset: 50 },
];

/** r and t of the single `RateLimit` list member. */
function rateLimit(field: string | null): { r: number; t: number } {
  const match = /^"per-minute";r=(\d+);t=(\d+)$/.exec(field ?? '');
  if (match === null) throw new Error(`unexpected RateLimit ${field}`);
  return { r: Number(match[1]), t: Number(match[2]) };
}

const headers = { standard: true, legacy: true };
const apps = {
  express: (limiter: RateLimiter) => expressApp(limiter, { headers }),
  fastify: (limiter: RateLimiter) => fastifyApp(limiter, { headers }),
};
const open: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of open.splice(0)) await close();
});

for (const [framework, makeApp] of Object.entries(apps)) {
  describe(`${framework}: RateLimit t is when more quota is made available (draft-10)`, () => {
    for (const { algorithm, t, reset } of cases) {
      it(`${algorithm}: t=${t} after r=0; refused a second earlier, admitted after t seconds`, async () => {
        const clock = new ManualClock(start);
        const limiter = createRateLimiter({
          limits: [{ name: 'per-minute', algorithm, limit: 5, windowMs: 60_000 }],
          clock,
        });
        const app = await makeApp(limiter);
        open.push(async () => {
          await app.close();
          await limiter.close();
        });
        const get = () => fetch(`${app.base}/`);

        expect((await get()).status).toBe(200);
        clock.advance(10_000);
        let last: Response | undefined;
        for (let index = 0; index < 4; index += 1) {
          last = await get();
          expect(last.status).toBe(200);
        }
        expect(rateLimit(last!.headers.get('ratelimit'))).toEqual({ r: 0, t });
        // The legacy reset is an epoch time of the limiter's clock (the injected one).
        const resetIn = Number(last!.headers.get('x-ratelimit-reset')) - clock.now() / 1_000;
        expect(resetIn).toBeGreaterThan(reset - 2);
        expect(resetIn).toBeLessThanOrEqual(reset + 1);

        const refused = await get();
        expect(refused.status).toBe(429);
        expect(rateLimit(refused.headers.get('ratelimit'))).toEqual({ r: 0, t });
        expect(refused.headers.get('retry-after')).toBe(String(t));

        clock.advance((t - 1) * 1_000);
        expect((await get()).status).toBe(429);
        clock.advance(1_000);
        const admitted = await get();
        expect(admitted.status).toBe(200);
      });
    }
  });
}
