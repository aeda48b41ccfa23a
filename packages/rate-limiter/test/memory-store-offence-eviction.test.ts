import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createRateLimiter, MemoryStore } from '../src/index.js';

/**
 * A repeat offender's record (its offences, which grow its next block) outlives its block by
 * `forgetAfterMs`, but once the block is over the memory store evicts it as it evicts counters:
 * the README's memory store section says so; this pins both sides of it.
 */
describe('memory store: an offender whose block is over is evicted as a counter', () => {
  /** The lengths of five consecutive blocks of one offender, `churn` other keys checked between. */
  function blockLengths(churn: number): number[] {
    const clock = new ManualClock(1_700_000_000_000);
    const store = new MemoryStore({ clock, maxKeys: 20, maxBlockedKeys: 2 });
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 100 }],
      autoBlock: { violations: 2, withinMs: 1_000, blockMs: 1_000, multiplier: 2, forgetAfterMs: 60_000 },
      clock,
      store,
    });
    const lengths: number[] = [];
    for (let offence = 0; offence < 5; offence += 1) {
      limiter.checkSync('offender');
      limiter.checkSync('offender');
      const blocked = limiter.checkSync('offender');
      expect(blocked.outcome).toBe('blocked');
      lengths.push(blocked.retryAfterMs);
      clock.advance(blocked.retryAfterMs);
      for (let key = 0; key < churn; key += 1) limiter.checkSync(`client-${offence}-${key}`);
    }
    return lengths;
  }

  it('grows each block while the other keys fit in maxKeys', () => {
    expect(blockLengths(15)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it('starts again from blockMs when more keys than maxKeys come between two offences', () => {
    expect(blockLengths(100)).toEqual([1_000, 1_000, 1_000, 1_000, 1_000]);
  });
});
