import { ManualClock, TimeoutError } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  type ConsumeOutcome,
  createRateLimiter,
  InvalidAdjustmentError,
  type RateLimitStore,
  rateLimitHeaders,
  UnsupportedOperationError,
} from '../src/index.js';

const start = 1_700_000_000_000;

describe('limiter.peek', () => {
  it('reports the key without counting it, in neither the store nor checks_total', async () => {
    const clock = new ManualClock(start);
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 1_000 }], clock, registry });
    await limiter.check('p');
    for (let index = 0; index < 3; index += 1)
      expect(await limiter.peek('p')).toMatchObject({ allowed: true, remaining: 1, resetMs: 1_000 });
    expect((await limiter.check('p')).allowed).toBe(true);
    expect((await limiter.check('p')).allowed).toBe(false);
    const text = await registry.metrics();
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 2',
    );
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="store"} 1',
    );
    expect(text).toContain('noa_rate_limiter_adjustments_total{limiter="limiter",operation="peek"} 3');
    await limiter.close();
  });

  it('answers deny-listed and unlimited callers as check does', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 1_000 }],
      deny: ['10.0.0.0/8'],
      roles: { admin: 'unlimited' },
    });
    expect((await limiter.peek({ key: 'x', ip: '10.1.2.3' })).outcome).toBe('denied');
    expect((await limiter.peek({ key: 'x', role: 'admin' })).outcome).toBe('unlimited');
    await limiter.close();
  });
});

describe('limiter.refund', () => {
  it('gives a counted request back in the current window only', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 1_000 }], clock });
    await limiter.check('r');
    await limiter.check('r');
    expect((await limiter.refund('r')).remaining).toBe(1);
    expect((await limiter.check('r')).allowed).toBe(true);
    expect((await limiter.check('r')).allowed).toBe(false);
    // The next window starts full; a refund then gives nothing extra.
    clock.advance(1_000);
    expect((await limiter.refund('r', 5)).remaining).toBe(2);
    expect([(await limiter.check('r')).allowed, (await limiter.check('r')).allowed]).toEqual([true, true]);
    expect((await limiter.check('r')).allowed).toBe(false);
    await limiter.close();
  });

  it("refunds a role's rule, every limit of it", async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 1_000 }],
      roles: {
        member: [
          { name: 'burst', algorithm: 'token-bucket', limit: 2, windowMs: 1_000 },
          { name: 'daily', algorithm: 'sliding-log', limit: 3, windowMs: 86_400_000 },
        ],
      },
      clock,
    });
    const input = { key: 'm', role: 'member' };
    await limiter.check(input);
    await limiter.check(input);
    const refunded = await limiter.refund(input, 2);
    expect(refunded.limits.map((limit) => limit.remaining)).toEqual([2, 3]);
    // The default rule's state of the same key is separate.
    expect((await limiter.peek('m')).remaining).toBe(1);
    await limiter.close();
  });

  it('rejects points that are not a non-negative integer', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await expect(limiter.refund('k', -1)).rejects.toBeInstanceOf(InvalidAdjustmentError);
    await expect(limiter.penalize('k', 1.5)).rejects.toMatchObject({
      code: 'NOA_RATE_LIMIT_INVALID_ADJUSTMENT',
    });
    await expect(limiter.block('k', 0)).rejects.toBeInstanceOf(InvalidAdjustmentError);
    // The field at fault, as InvalidCheckInputError and InvalidCostError name theirs.
    await expect(limiter.refund('k', -1)).rejects.toMatchObject({ field: 'points' });
    await expect(limiter.penalize('k', 1.5)).rejects.toMatchObject({ field: 'points' });
    await expect(limiter.block('k', 0)).rejects.toMatchObject({ field: 'durationMs' });
    await limiter.close();
  });
});

describe('limiter.penalize', () => {
  it('consumes over the limit down to remaining 0, and the next check is refused until reset', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ algorithm: 'token-bucket', limit: 10, windowMs: 10_000 }],
      clock,
    });
    expect((await limiter.penalize('t', 4)).remaining).toBe(6);
    expect((await limiter.penalize('t', 100)).remaining).toBe(0);
    const refused = await limiter.check('t');
    expect(refused).toMatchObject({ allowed: false, outcome: 'limited', retryAfterMs: 1_000 });
    await limiter.close();
  });
});

describe('limiter.block', () => {
  it('blocks like an auto-block: outcome blocked, Retry-After and RateLimit agree; unblock lifts it', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ name: 'api', limit: 5, windowMs: 60_000 }],
      autoBlock: { violations: 3, withinMs: 60_000, blockMs: 10_000 },
      clock,
    });
    await limiter.check('b');
    expect((await limiter.block('b', 120_000)).outcome).toBe('blocked');
    clock.advance(20_000);
    const blocked = await limiter.check('b');
    expect(blocked).toMatchObject({ allowed: false, outcome: 'blocked', retryAfterMs: 100_000 });
    const headers = rateLimitHeaders(blocked, {}, clock.now());
    expect(headers['Retry-After']).toBe('100');
    expect(headers.RateLimit).toBe('"api";r=0;t=100');
    // The blocked check counted nothing.
    expect((await limiter.unblock('b')).remaining).toBe(4);
    expect((await limiter.check('b')).allowed).toBe(true);
    await limiter.close();
  });

  it.each(['fixed-window', 'sliding-window', 'sliding-log', 'token-bucket', 'leaky-bucket'] as const)(
    'without autoBlock, %s: every check path honours a manual block',
    async (algorithm) => {
      const clock = new ManualClock(start);
      const limiter = createRateLimiter({
        limits: [{ name: 'api', algorithm, limit: 5, windowMs: 60_000 }],
        roles: {
          pro: [
            { name: 'api', algorithm, limit: 5, windowMs: 60_000 },
            { limit: 100, windowMs: 60_000 },
          ],
        },
        clock,
      });
      await limiter.check('b');
      expect(await limiter.block('b', 30_000)).toMatchObject({ outcome: 'blocked', retryAfterMs: 30_000 });
      await limiter.block({ key: 'b', role: 'pro' }, 30_000);
      // The string fast path, the input object path, checkSync and a multi-limit rule.
      for (const input of ['b', { key: 'b', cost: 2 }, { key: 'b', role: 'pro' }]) {
        const blocked = await limiter.check(input);
        expect(blocked).toMatchObject({ allowed: false, outcome: 'blocked', retryAfterMs: 30_000 });
      }
      expect(limiter.checkSync('b')).toMatchObject({ outcome: 'blocked', retryAfterMs: 30_000 });
      expect(rateLimitHeaders(await limiter.check('b'), {}, clock.now())['Retry-After']).toBe('30');
      // The blocked checks counted nothing: the one before the block is all there is.
      expect(await limiter.unblock('b')).toMatchObject({ allowed: true, remaining: 4 });
      expect(await limiter.check('b')).toMatchObject({ allowed: true, remaining: 3 });
      // A block ends on time.
      await limiter.block('b', 30_000);
      clock.advance(10_000);
      expect(await limiter.check('b')).toMatchObject({ outcome: 'blocked', retryAfterMs: 20_000 });
      clock.advance(20_000);
      expect(await limiter.check('b')).toMatchObject({ allowed: true, outcome: 'allowed' });
      await limiter.close();
    },
  );
});

/** A custom store written before adjustments existed: it has no `adjust`. */
class CheckOnlyStore implements RateLimitStore {
  readonly kind = 'check-only';
  readonly remote = true;
  consume(): Promise<ConsumeOutcome[]> {
    return Promise.resolve([{ blockedMs: 0, decisions: [] }]);
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A remote store whose adjust never answers. */
class HangingAdjustStore extends CheckOnlyStore {
  adjust(): Promise<ConsumeOutcome> {
    return new Promise(() => {});
  }
}

describe('adjustments on remote stores', () => {
  it('a store without adjust() fails with an error naming the operation', async () => {
    const limiter = createRateLimiter({
      store: new CheckOnlyStore(),
      limits: [{ limit: 1, windowMs: 1_000 }],
    });
    for (const operation of ['peek', 'refund', 'penalize'] as const) {
      const error = await (operation === 'penalize'
        ? limiter.penalize('k', 1)
        : limiter[operation]('k')
      ).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(UnsupportedOperationError);
      expect((error as UnsupportedOperationError).operation).toBe(operation);
      expect((error as Error).message).toContain('check-only');
    }
    await limiter.close();
  });

  it("run under the check deadline: with failMode 'closed' a hanging store rejects with a TimeoutError", async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      store: new HangingAdjustStore(),
      limits: [{ limit: 1, windowMs: 1_000 }],
      failMode: 'closed',
      deadlineMs: 20,
      registry,
    });
    await expect(limiter.refund('k')).rejects.toBeInstanceOf(TimeoutError);
    expect(await registry.metrics()).toContain(
      'noa_rate_limiter_store_errors_total{limiter="limiter",kind="timeout"} 1',
    );
    await limiter.close();
  });

  it("run under the check deadline: with failMode 'local' (the default) a hanging store's adjustment applies locally", async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      store: new HangingAdjustStore(),
      limits: [{ limit: 3, windowMs: 60_000 }],
      deadlineMs: 20,
      registry,
    });
    const penalized = await limiter.penalize('k', 3);
    expect([penalized.source, penalized.remaining]).toEqual(['fallback', 0]);
    expect(await registry.metrics()).toContain(
      'noa_rate_limiter_store_errors_total{limiter="limiter",kind="timeout"} 1',
    );
    await limiter.close();
  });
});
