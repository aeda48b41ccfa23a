import { describe, expect, it } from 'vitest';
import {
  CostExceedsCapacityError,
  createRateLimiter,
  InvalidCheckInputError,
  InvalidCostError,
  RateLimitedError,
} from '../src/index.js';

// rate-limiter-flexible's `consume(key, points)`, and our own `refund(input, points)` and
// `penalize(input, points)`: a migrating caller writes the cost as the second argument.
const limiterOf = (limits = [{ limit: 10, windowMs: 60_000 }]) => createRateLimiter({ limits });

describe('cost as the second argument of check, checkSync and consume', () => {
  it('check(key, points) takes the points', async () => {
    const limiter = limiterOf();
    expect((await limiter.check('user:1', 5)).remaining).toBe(5);
    expect((await limiter.check({ key: 'user:2', role: undefined }, 3)).remaining).toBe(7);
    expect((await limiter.check('user:1', 6)).allowed).toBe(false);
    await limiter.close();
  });

  it('checkSync(key, points) takes the points, several limits too', async () => {
    const limiter = limiterOf([
      { limit: 10, windowMs: 60_000 },
      { limit: 100, windowMs: 3_600_000 },
    ]);
    expect(limiter.checkSync('user:1', 4).limits.map((limit) => limit.remaining)).toEqual([6, 96]);
    await limiter.close();
  });

  it('consume(key, points) takes the points and refuses what does not fit', async () => {
    const limiter = limiterOf();
    expect((await limiter.consume('user:1', 8)).remaining).toBe(2);
    await expect(limiter.consume('user:1', 3)).rejects.toBeInstanceOf(RateLimitedError);
    const beyond = await limiter.consume('user:1', 11).catch((error: unknown) => error);
    expect(beyond).toBeInstanceOf(CostExceedsCapacityError);
    expect((beyond as CostExceedsCapacityError).cost).toBe(11);
    await limiter.close();
  });

  it('a cost given twice, or not a non-negative integer, is refused', async () => {
    const limiter = limiterOf();
    const twice = await limiter.check({ key: 'user:1', cost: 2 }, 3).catch((error: unknown) => error);
    expect(twice).toBeInstanceOf(InvalidCheckInputError);
    expect((twice as InvalidCheckInputError).field).toBe('cost');
    await expect(limiter.check('user:1', -1)).rejects.toBeInstanceOf(InvalidCostError);
    await expect(limiter.check('user:1', 1.5)).rejects.toBeInstanceOf(InvalidCostError);
    expect((await limiter.peek('user:1')).remaining).toBe(10);
    await limiter.close();
  });
});
