import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AutoBlockPolicy,
  autoBlockSchema,
  blockRemainingMs,
  recordViolation,
} from '../src/auto-block.js';

const policy: AutoBlockPolicy = autoBlockSchema.parse({ violations: 3, withinMs: 1_000, blockMs: 10_000 });

describe('auto-block', () => {
  it('blocks after N violations within the window, for blockMs', () => {
    let state = recordViolation(undefined, 0, policy);
    state = recordViolation(state, 100, policy);
    expect(blockRemainingMs(state, 100)).toBe(0);
    state = recordViolation(state, 200, policy);
    expect(blockRemainingMs(state, 200)).toBe(10_000);
    expect(blockRemainingMs(state, 10_200)).toBe(0);
  });

  it('does not block when violations are spread beyond the window', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1_000, max: 5_000 }), { maxLength: 50 }), (gaps) => {
        let state = recordViolation(undefined, 0, policy);
        let now = 0;
        for (const gap of gaps) {
          now += gap;
          state = recordViolation(state, now, policy);
          expect(blockRemainingMs(state, now)).toBe(0);
        }
      }),
    );
  });

  it('grows the block for repeat offenders up to maxBlockMs, and forgets after forgetAfterMs', () => {
    const growing = autoBlockSchema.parse({
      violations: 1,
      withinMs: 1_000,
      blockMs: 1_000,
      multiplier: 3,
      maxBlockMs: 20_000,
      forgetAfterMs: 60_000,
    });
    let state = recordViolation(undefined, 0, growing);
    const lengths = [blockRemainingMs(state, 0)];
    for (let index = 0; index < 4; index += 1) {
      const now = state.blockedUntil;
      state = recordViolation(state, now, growing);
      lengths.push(blockRemainingMs(state, now));
    }
    expect(lengths).toEqual([1_000, 3_000, 9_000, 20_000, 20_000]);
    const later = state.blockedUntil + 60_000;
    expect(blockRemainingMs(recordViolation(state, later, growing), later)).toBe(1_000);
  });
});
