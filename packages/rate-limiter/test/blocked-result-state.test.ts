import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, rateLimitHeaders } from '../src/index.js';

// README "Without HTTP": a blocked result's `remaining`, `resetMs` and `limits` are its windows'
// (what the key has once the block ends); `allowed`, `retryAfterMs` and `blockedMs` say it is
// blocked, and its headers say r=0 until the block ends.

describe('a blocked key’s result', () => {
  it('reports its windows’ state; the headers and retry time report the block', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 3, windowMs: 60_000 }], clock });
    await limiter.check('u');
    await limiter.block('u', 120_000);
    const blocked = await limiter.check('u');
    expect(blocked).toMatchObject({
      allowed: false,
      outcome: 'blocked',
      remaining: 2,
      retryAfterMs: 120_000,
    });
    expect(blocked.source === 'fail-mode' ? undefined : blocked.blockedMs).toBe(120_000);
    expect(blocked.limits[0]).toMatchObject({ remaining: 2 });
    const headers = rateLimitHeaders(blocked, { legacy: true }, clock.now());
    expect(headers.RateLimit).toBe('"api";r=0;t=120');
    expect(headers['X-RateLimit-Remaining']).toBe('0');
    expect(headers['Retry-After']).toBe('120');
    await limiter.close();
  });
});
