import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AutoBlockPolicy,
  autoBlockSchema,
  type BlockState,
  blockRemainingMs,
  recordViolation,
  violationSlots,
} from '../src/auto-block.js';
import { MemoryStore } from '../src/index.js';
import type { LimitPolicy } from '../src/policy.js';

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

describe('auto-block counts violations in a sliding window (fail2ban findtime)', () => {
  // Reference model: the violations since the last block, at their times. A key refused N times
  // within any withinMs is blocked by the N-th; a window starting at the first violation let up
  // to 2N − 3 through in a sliding one (N − 1 at the end of one window, N − 2 after the next began).
  const blockingArb = fc.record({
    violations: fc.integer({ min: 1, max: 12 }),
    withinMs: fc.integer({ min: 1, max: 5_000 }),
  });
  const gapsArb = fc.array(fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 6_000 })), {
    minLength: 1,
    maxLength: 150,
  });

  it('blocks at the N-th violation within any withinMs, and only when N fall within withinMs + one slot', () => {
    fc.assert(
      fc.property(
        blockingArb,
        fc.integer({ min: 0, max: 1_900_000_000_000 }),
        gapsArb,
        (options, start, gaps) => {
          const blocking = autoBlockSchema.parse({ ...options, blockMs: 1 });
          let state: BlockState | undefined;
          let now = start;
          let since: number[] = [];
          for (const gap of gaps) {
            // Violations are refusals: a blocked key records none, so time moves past any block.
            now = Math.max(now + gap, state?.blockedUntil ?? now);
            state = recordViolation(state, now, blocking);
            since.push(now);
            const inWindow = since.filter((time) => time > now - blocking.withinMs).length;
            const blocked = blockRemainingMs(state, now) > 0;
            if (inWindow >= blocking.violations) expect(blocked).toBe(true);
            if (blocked) {
              // The N violations that blocked it are never further apart than the counting horizon.
              const horizon = (violationSlots + 1) * Math.ceil(blocking.withinMs / violationSlots);
              expect(since.filter((time) => time > now - horizon).length).toBeGreaterThanOrEqual(
                blocking.violations,
              );
              since = [];
            }
          }
        },
      ),
    );
  });

  it('under a clock that steps back: blocked only when N violations since the last block lie within the counting horizon by their times', () => {
    // Each violation is counted at its own time: one whose clock went back counts in the slot of
    // that time, not in the newest slot, where it would count with refusals up to the step (up to
    // 20 minutes) later. It counted with them, so refusals minutes apart blocked a key.
    fc.assert(
      fc.property(
        blockingArb,
        fc.integer({ min: 1_000_000_000, max: 1_900_000_000_000 }),
        fc.array(
          fc.oneof(
            { weight: 6, arbitrary: fc.integer({ min: 0, max: 3_000 }) },
            { weight: 2, arbitrary: fc.integer({ min: -3_000, max: 0 }) },
            { weight: 1, arbitrary: fc.integer({ min: -20 * 60_000, max: 0 }) },
          ),
          { minLength: 1, maxLength: 150 },
        ),
        (options, start, gaps) => {
          const blocking = autoBlockSchema.parse({ ...options, blockMs: 1 });
          const horizon = (violationSlots + 1) * Math.ceil(blocking.withinMs / violationSlots);
          let state: BlockState | undefined;
          let now = start;
          let since: number[] = [];
          for (const gap of gaps) {
            now += gap;
            // A blocked key records no violations.
            if (blockRemainingMs(state, now) > 0) continue;
            state = recordViolation(state, now, blocking);
            since.push(now);
            if (blockRemainingMs(state, now) > 0) {
              const sorted = since.toSorted((a, b) => a - b);
              const within = sorted.some(
                (first, index) =>
                  index + blocking.violations - 1 < sorted.length &&
                  sorted[index + blocking.violations - 1]! - first < horizon,
              );
              expect(within, `blocked at ${now} by ${sorted.join(', ')}`).toBe(true);
              since = [];
            }
          }
        },
      ),
    );
  });

  it('counts a violation whose clock went back at its own time: refusals 5 minutes apart do not block', () => {
    // violations 3 within 1 s: one at 10 min; the clock goes back 5 min (a failover to a replica
    // behind), then one refusal a minute: each is minutes from the others by its time.
    let state = recordViolation(undefined, 600_000, policy);
    for (const now of [300_000, 360_000, 420_000, 480_000]) {
      state = recordViolation(state, now, policy);
      expect(blockRemainingMs(state, now)).toBe(0);
    }
    // Three within 1 s by their times still block, the clock behind or not.
    state = recordViolation(state, 480_400, policy);
    state = recordViolation(state, 480_700, policy);
    expect(blockRemainingMs(state, 480_700)).toBeGreaterThan(0);
  });

  it('blocks the worked case: one violation at the end of a window, two just after it', () => {
    // violations 3 within 1 s: at 0 (a window starting there), 999, then 1,000 and 1,001: the last
    // three fall within 3 ms. It blocks by 1,001 (at 1,000 already: the violation at 0 is within
    // withinMs plus a slot); the window from 0 let all four through.
    let state = recordViolation(undefined, 0, policy);
    state = recordViolation(state, 999, policy);
    expect(blockRemainingMs(state, 999)).toBe(0);
    let blockedAt: number | undefined;
    for (const now of [1_000, 1_001]) {
      state = recordViolation(state, now, policy);
      if (blockRemainingMs(state, now) > 0) {
        blockedAt = now;
        break;
      }
    }
    expect(blockedAt).toBeDefined();
  });
});

describe('auto-block on the memory store', () => {
  const limits: LimitPolicy[] = [{ name: 'd', algorithm: 'fixed-window', limit: 1, windowMs: 1_000 }];
  // One refusal blocks; each repeat offence within a day doubles the block.
  const growing = autoBlockSchema.parse({ violations: 1, withinMs: 1_000, blockMs: 5_000 });

  it("keeps a repeat offender's record past an admitted request: only forgetAfterMs without a block resets the growth", () => {
    for (const algorithm of ['fixed-window', 'token-bucket'] as const) {
      const clock = new ManualClock(1_700_000_000_000);
      const store = new MemoryStore({ clock });
      const rule = [{ ...limits[0]!, algorithm }];
      const offend = () => {
        while (store.consumeOne('offender', rule, 1, growing).decisions[0]!.allowed);
        return store.consumeOne('offender', rule, 0, growing).blockedMs;
      };
      expect(offend()).toBe(5_000);
      clock.advance(5_000);
      // Back after the block: one request in a fresh window is admitted (its state is kept 1 s).
      expect(store.consumeOne('offender', rule, 1, growing).decisions[0]!.allowed).toBe(true);
      // An hour later, far within forgetAfterMs (a day): the next offence is the second one.
      clock.advance(3_600_000);
      expect(offend()).toBe(10_000);
    }
  });
});
