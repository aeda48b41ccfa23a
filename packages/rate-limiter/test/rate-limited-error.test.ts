import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, RateLimitedError, type RateLimitResult, rateLimitHeaders } from '../src/index.js';

// consume() rejects with RateLimitedError: it carries the refusal's whole result (as
// rate-limiter-flexible's RateLimiterRes), so a caller can send the same headers a middleware does.

const start = 1_800_000_000_000;

async function refusalOf(promise: Promise<unknown>): Promise<RateLimitedError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(RateLimitedError);
  return error as RateLimitedError;
}

describe('RateLimitedError', () => {
  it('carries the refused result, from which the headers are built', async () => {
    const clock = new ManualClock(start + 20_000);
    const limiter = createRateLimiter({
      limits: [
        { name: 'minute', limit: 2, windowMs: 60_000 },
        { name: 'day', limit: 100, windowMs: 86_400_000 },
      ],
      clock,
    });
    await limiter.consume('k');
    await limiter.consume('k');
    const error = await refusalOf(limiter.consume('k'));
    const result: RateLimitResult | undefined = error.result;
    expect(result).toMatchObject({
      allowed: false,
      outcome: 'limited',
      key: 'k',
      source: 'store',
      remaining: 0,
      retryAfterMs: 40_000,
    });
    expect(result?.limits.map((limit) => [limit.name, limit.remaining])).toEqual([
      ['minute', 0],
      ['day', 98],
    ]);
    expect(error.retryAfterMs).toBe(result?.retryAfterMs);
    const headers = rateLimitHeaders(error.result!, {}, clock.now());
    expect(headers['Retry-After']).toBe('40');
    expect(headers.RateLimit).toMatch(/^"minute";r=0;t=40, "day";r=98;t=\d+$/);
    // Not in details: the error's JSON stays what it was.
    expect(Object.keys(error.details ?? {})).not.toContain('result');
    await limiter.close();
  });

  it('carries a blocked result too', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
    await limiter.block('k', 5_000);
    const error = await refusalOf(limiter.consume('k'));
    expect(error.result).toMatchObject({ outcome: 'blocked', blockedMs: 5_000 });
    await limiter.close();
  });
});
