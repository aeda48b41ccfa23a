import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, quotaProblem } from '../src/index.js';
import { expressApp, fastifyApp } from './http-apps.js';

// An auto-block shorter than the window: the key is blocked for 5 s, but its window's quota comes
// back only at the window's end, 60 s after it began. Retry-After is the later of the two; the
// detail says how long the block itself lasts.

const start = 1_800_000_000_000;
const limiterOf = (clock: ManualClock) =>
  createRateLimiter({
    limits: [{ limit: 2, windowMs: 60_000 }],
    autoBlock: { violations: 1, withinMs: 60_000, blockMs: 5_000 },
    clock,
  });

describe('the detail of a blocked refusal', () => {
  it('states the block’s own length, and Retry-After stays the later end', async () => {
    const clock = new ManualClock(start + 13_000);
    const limiter = limiterOf(clock);
    await limiter.check('k');
    await limiter.check('k');
    const blocked = await limiter.check('k');
    expect(blocked.outcome).toBe('blocked');
    expect(blocked.retryAfterMs).toBe(47_000);
    expect(blocked.source === 'fail-mode' ? undefined : blocked.blockedMs).toBe(5_000);
    const problem = quotaProblem(blocked);
    expect(problem.retryAfter).toBe(47);
    expect(problem.detail).toBe(
      'Too many requests over the limit: blocked for 5 s; the quota comes back in 47 s, retry then.',
    );
    clock.advance(2_000);
    const later = await limiter.check('k');
    // A check during the block says when the request would be admitted, as the first refusal does.
    expect(later.source === 'fail-mode' ? undefined : later.blockedMs).toBe(3_000);
    expect(later.retryAfterMs).toBe(45_000);
    expect(quotaProblem(later).detail).toBe(
      'Too many requests over the limit: blocked for 3 s; the quota comes back in 45 s, retry then.',
    );
    await limiter.close();
  });

  it('a block that ends after the window says only the block', async () => {
    const clock = new ManualClock(start + 58_000);
    const limiter = limiterOf(clock);
    await limiter.check('k');
    await limiter.check('k');
    const blocked = await limiter.check('k');
    expect(blocked.retryAfterMs).toBe(5_000);
    expect(quotaProblem(blocked).detail).toBe('Too many requests over the limit: blocked for 5 s.');
    await limiter.close();
  });

  it.each([
    { name: 'Express', start: expressApp },
    { name: 'Fastify', start: fastifyApp },
  ])('$name: the 429 body says 5 s for the block, Retry-After 47', async ({ start: serve }) => {
    const clock = new ManualClock(start + 13_000);
    const limiter = limiterOf(clock);
    const app = await serve(limiter);
    try {
      for (let index = 0; index < 2; index += 1) await (await fetch(app.base)).arrayBuffer();
      const response = await fetch(app.base);
      const body = (await response.json()) as { detail: string; retryAfter: number };
      expect(response.status).toBe(429);
      expect(response.headers.get('retry-after')).toBe('47');
      expect(body.retryAfter).toBe(47);
      expect(body.detail).toMatch(/^Too many requests over the limit: blocked for 5 s; /);
    } finally {
      await app.close();
      await limiter.close();
    }
  });
});
