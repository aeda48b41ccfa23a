import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitInput, quotaProblem, rateLimitHeaders } from '../src/index.js';
import { expressApp, fastifyApp } from './http-apps.js';

// A block shorter than the window: 2 points a minute, one refusal blocks for 5 s. Refused at
// 13 s into the window, the key is blocked until 18 s, but its quota comes back only at 60 s.
// Every check during the block must say 60 s, as the refusal that started it does: a client
// that comes back at the block's end is refused again (and blocked again, for longer).

const windowStart = 1_800_000_000_000;
const limits: LimitInput[] = [{ limit: 2, windowMs: 60_000 }];
const autoBlocked = (clock: ManualClock) =>
  createRateLimiter({ limits, autoBlock: { violations: 1, withinMs: 60_000, blockMs: 5_000 }, clock });

describe('a check during a block answers when a request would be admitted', () => {
  it('auto-block: retryAfterMs, Retry-After and t are the quota’s return, blockedMs the block', async () => {
    const clock = new ManualClock(windowStart + 13_000);
    const limiter = autoBlocked(clock);
    await limiter.check('k');
    await limiter.check('k');
    expect((await limiter.check('k')).retryAfterMs).toBe(47_000);
    clock.advance(2_000);
    const during = await limiter.check('k');
    expect(during.outcome).toBe('blocked');
    expect(during.retryAfterMs).toBe(45_000);
    expect(during.source === 'fail-mode' ? undefined : during.blockedMs).toBe(3_000);
    expect(during.limits[0]!.retryAfterMs).toBe(45_000);
    const headers = rateLimitHeaders(during);
    expect(headers['Retry-After']).toBe('45');
    expect(headers.RateLimit).toBe('"default";r=0;t=45');
    expect(quotaProblem(during).detail).toBe(
      'Too many requests over the limit: blocked for 3 s; the quota comes back in 45 s, retry then.',
    );
    // checkSync and consume() say the same.
    expect(limiter.checkSync('k').retryAfterMs).toBe(45_000);
    await expect(limiter.consume('k')).rejects.toMatchObject({ retryAfterMs: 45_000 });
    // Obeying it: admitted.
    clock.advance(45_000);
    expect((await limiter.check('k')).allowed).toBe(true);
    await limiter.close();
  });

  it('a block that ends after the quota’s return still answers the block', async () => {
    const clock = new ManualClock(windowStart + 13_000);
    const limiter = createRateLimiter({
      limits,
      autoBlock: { violations: 1, withinMs: 60_000, blockMs: 120_000, maxBlockMs: 120_000 },
      clock,
    });
    await limiter.check('k');
    await limiter.check('k');
    await limiter.check('k');
    clock.advance(2_000);
    const during = await limiter.check('k');
    expect(during.retryAfterMs).toBe(118_000);
    expect(during.source === 'fail-mode' ? undefined : during.blockedMs).toBe(118_000);
    await limiter.close();
  });

  it('a manual block over a spent window, one limit and several, with a cost', async () => {
    const makers = [
      (clock: ManualClock) => createRateLimiter({ limits, clock }),
      (clock: ManualClock) =>
        createRateLimiter({
          limits: [
            { name: 'minute', limit: 2, windowMs: 60_000 },
            { name: 'hour', limit: 100, windowMs: 3_600_000 },
          ],
          clock,
        }),
    ];
    for (const make of makers) {
      const limiter = make(new ManualClock(windowStart + 13_000));
      await limiter.check('k');
      await limiter.check('k');
      await limiter.block('k', 5_000);
      (limiter.clock as ManualClock).advance(2_000);
      const during = await limiter.check('k');
      expect(during.outcome).toBe('blocked');
      expect(during.retryAfterMs).toBe(45_000);
      expect(during.source === 'fail-mode' ? undefined : during.blockedMs).toBe(3_000);
      await limiter.close();
    }
    const clock = new ManualClock(windowStart + 13_000);
    // A cost that fits the quota left needs only the block's end; one that does not, the window's.
    const costs = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }], clock, prefix: 'cost' });
    await costs.check({ key: 'k', cost: 7 });
    await costs.block('k', 5_000);
    expect((await costs.check({ key: 'k', cost: 3 })).retryAfterMs).toBe(5_000);
    expect((await costs.check({ key: 'k', cost: 4 })).retryAfterMs).toBe(47_000);
    await costs.close();
  });

  it.each([
    { name: 'Express', start: expressApp },
    { name: 'Fastify', start: fastifyApp },
  ])('$name: a client that obeys Retry-After during the block is admitted', async ({ start: serve }) => {
    const clock = new ManualClock(windowStart + 13_000);
    const limiter = autoBlocked(clock);
    const app = await serve(limiter);
    const get = async () => {
      const response = await fetch(app.base);
      await response.arrayBuffer();
      return response;
    };
    try {
      expect((await get()).status).toBe(200);
      expect((await get()).status).toBe(200);
      expect((await get()).status).toBe(429);
      clock.advance(2_000);
      const during = await get();
      expect(during.status).toBe(429);
      const retryAfter = Number(during.headers.get('retry-after'));
      expect(retryAfter).toBe(45);
      clock.advance(retryAfter * 1_000);
      expect((await get()).status).toBe(200);
    } finally {
      await app.close();
      await limiter.close();
    }
  });
});
