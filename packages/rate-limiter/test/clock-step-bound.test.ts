import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maxClockStepBackMs } from '../src/algorithms/clock-step.js';
import { adjusters, algorithms } from '../src/algorithms/index.js';
import { autoBlockSchema, createRateLimiter, recordViolation } from '../src/index.js';
import { algorithmNames, capacityOf } from '../src/policy.js';
import { policyArb } from './policy-arbitrary.js';

// A clock that jumps far ahead (a misconfigured NTP server, a VM restored with a wrong time, a
// failover to a replica whose clock is hours off) and then back: the state its checks wrote is
// stamped hours ahead. Trusted as it stands, it refused the key until the clock caught up (a
// window counted in hours from now, a bucket that neither refills nor leaks). A step back of up to
// maxClockStepBackMs is honoured as before; a state further ahead starts afresh.

const start = 1_700_000_000_000;
const hour = 3_600_000;

describe('a state stamped further ahead than any clock step back', () => {
  for (const algorithm of algorithmNames) {
    it(`${algorithm}: a key filled by a clock hours ahead is admitted again once the clock is back`, () => {
      fc.assert(
        fc.property(
          policyArb(algorithm),
          // A window's state is stamped at its window's start, up to a window (≤ 3 s here) before the
          // checks that filled it.
          fc.integer({ min: maxClockStepBackMs + 3_001, max: 400 * 24 * hour }),
          (policy, ahead) => {
            const { step } = algorithms[algorithm];
            let state: unknown;
            // Fill the key at the clock that is ahead.
            for (let index = 0; index < capacityOf(policy) + 1; index += 1) {
              const { decision, state: next } = step(state, start + ahead, 1, policy);
              if (decision.allowed) state = next;
            }
            expect(step(state, start + ahead, 1, policy).decision.allowed).toBe(false);
            const back = step(state, start, 1, policy).decision;
            expect(back.allowed).toBe(true);
            expect(back.resetMs).toBeLessThanOrEqual(capacityOf(policy) * policy.windowMs * 2);
            // A refund or a penalty at the clock that is back counts in a fresh state too.
            const penalized = adjusters[algorithm].penalize(state, start, capacityOf(policy), policy);
            const afterPenalty = step(penalized, start + 2 * policy.windowMs * capacityOf(policy), 1, policy);
            expect(afterPenalty.decision.allowed).toBe(true);
          },
        ),
      );
    });

    it(`${algorithm}: a step back within the bound still counts in the state as it stands`, () => {
      const policy = { name: 'p', algorithm, limit: 2, windowMs: 1_000 } as const;
      const { step } = algorithms[algorithm];
      let state: unknown;
      const ahead = 5_500;
      for (let index = 0; index < 3; index += 1) {
        const { decision, state: next } = step(state, start + ahead, 1, policy);
        if (decision.allowed) state = next;
      }
      expect(step(state, start, 1, policy).decision.allowed).toBe(false);
    });
  }

  /** Gaps of ordinary traffic with, now and then, a jump of hours or a step at the bound. */
  const jumpyArb = fc.array(
    fc.record({
      gap: fc.oneof(
        { weight: 8, arbitrary: fc.integer({ min: -6_000, max: 3_000 }) },
        { weight: 1, arbitrary: fc.integer({ min: -3 * hour, max: 3 * hour }) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.constantFrom(-1, 1), fc.integer({ min: -3_002, max: 3_002 }))
            .map(([sign, off]) => sign * (maxClockStepBackMs + off)),
        },
      ),
      cost: fc.integer({ min: 0, max: 3 }),
    }),
    { minLength: 1, maxLength: 80 },
  );

  for (const algorithm of algorithmNames) {
    it(`${algorithm}: under jumps of hours, remaining stays within the quota and a refusal's retry is exact`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), jumpyArb, (policy, requests) => {
          const { step } = algorithms[algorithm];
          let state: unknown;
          let now = start;
          for (const request of requests) {
            now += request.gap;
            const { decision, state: next } = step(state, now, request.cost, policy);
            expect(decision.remaining).toBeGreaterThanOrEqual(0);
            expect(decision.remaining).toBeLessThanOrEqual(decision.limit);
            expect(decision.resetMs).toBeGreaterThanOrEqual(0);
            // Never longer than the bound plus what a state as it stands can ask.
            expect(decision.resetMs).toBeLessThanOrEqual(
              maxClockStepBackMs + 2 * capacityOf(policy) * policy.windowMs,
            );
            if (decision.allowed) state = next;
            // RateLimit's t: more than remaining at now + nextMs and not 1 ms earlier, whatever
            // the clock did (a state ahead of it included); 0 exactly when the quota is full.
            const probe = step(state, now, 0, policy).decision;
            expect(probe.nextMs).toBeGreaterThanOrEqual(0);
            expect(probe.nextMs).toBeLessThanOrEqual(probe.resetMs);
            expect(probe.nextMs === 0).toBe(probe.remaining === capacityOf(policy));
            if (probe.nextMs > 0) {
              expect(step(state, now + probe.nextMs, 0, policy).decision.remaining).toBeGreaterThan(
                probe.remaining,
              );
              expect(step(state, now + probe.nextMs - 1, 0, policy).decision.remaining).toBe(probe.remaining);
            }
            if (decision.allowed) continue;
            if (request.cost > capacityOf(policy)) continue;
            const at = now + decision.retryAfterMs;
            expect(decision.retryAfterMs).toBeGreaterThan(0);
            expect(step(state, at, request.cost, policy).decision.allowed).toBe(true);
            expect(step(state, at - 1, request.cost, policy).decision.allowed).toBe(false);
          }
        }),
      );
    });
  }

  it('a limiter on the memory store answers a key a clock filled a day ahead once the clock is back, with a short Retry-After', async () => {
    const clock = new ManualClock(start + 24 * hour);
    const limiter = createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }], clock });
    await limiter.check('a');
    await limiter.check('a');
    expect((await limiter.check('a')).allowed).toBe(false);
    clock.set(start);
    const result = await limiter.check('a');
    expect(result).toMatchObject({ allowed: true, remaining: 1 });
    await limiter.close();
  });

  // A block recorded while the clock was ahead ends at that clock's time plus its length: once the
  // clock is back, what remains of it must still be at most its own length (as the violation
  // slots and the queueing bucket bound a step back), not its length plus the step.
  for (const ahead of [5 * 60_000, 2 * hour, 3 * 24 * hour]) {
    it(`a manual block recorded ${ahead / 60_000} min ahead lasts its own length once the clock is back`, async () => {
      const clock = new ManualClock(start + ahead);
      const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 1_000 }], clock });
      await limiter.block('m', 60_000);
      clock.set(start);
      const blocked = await limiter.check('m');
      expect(blocked.outcome).toBe('blocked');
      expect(blocked.retryAfterMs).toBeLessThanOrEqual(60_000);
      expect((await limiter.peek('m')).retryAfterMs).toBeLessThanOrEqual(60_000);
      clock.advance(30_000);
      expect((await limiter.check('m')).retryAfterMs).toBeLessThanOrEqual(30_000);
      clock.advance(30_000);
      expect((await limiter.check('m')).allowed).toBe(true);
      await limiter.close();
    });

    it(`an auto-block started ${ahead / 60_000} min ahead lasts its own length once the clock is back`, async () => {
      const clock = new ManualClock(start + ahead);
      const limiter = createRateLimiter({
        limits: [{ limit: 1, windowMs: 1_000 }],
        autoBlock: { violations: 2, withinMs: 60_000, blockMs: 30_000 },
        clock,
      });
      await limiter.check('a');
      await limiter.check('a');
      expect((await limiter.check('a')).outcome).toBe('blocked');
      clock.set(start);
      const blocked = await limiter.check('a');
      expect(blocked.outcome).toBe('blocked');
      const blockedMs = blocked.source === 'fail-mode' ? undefined : blocked.blockedMs;
      expect(blockedMs).toBeLessThanOrEqual(30_000);
      // Retry-After is the later of the block's end and the limit's own retry time (a window
      // ahead by less than any clock step back still counts as it stands, and refuses for longer).
      expect(blocked.retryAfterMs).toBe(Math.max(blockedMs!, blocked.limits[0]!.retryAfterMs));
      expect(blocked.retryAfterMs).toBe(ahead < 20 * 60_000 ? ahead + 1_000 : blockedMs);
      clock.advance(30_000);
      // The block is over (a step back within maxClockStepBackMs still counts the limit's window
      // as it stands, so that one may refuse: the block does not).
      expect((await limiter.check('a')).outcome).not.toBe('blocked');
      await limiter.close();
    });
  }

  it('violations a clock hours ahead counted start a fresh auto-block window once the clock is back', () => {
    const policy = autoBlockSchema.parse({ violations: 3, withinMs: 60_000, blockMs: 10_000 });
    fc.assert(
      fc.property(fc.integer({ min: maxClockStepBackMs + 1, max: 400 * 24 * hour }), (ahead) => {
        let state = recordViolation(undefined, start + ahead, policy);
        state = recordViolation(state, start + ahead, policy);
        const back = recordViolation(state, start, policy);
        expect(back).toMatchObject({ violations: 1, windowStart: start, blockedUntil: 0 });
        // Within the bound, the violations still count in their window.
        const near = recordViolation(
          recordViolation(undefined, start + 5_000, policy),
          start + 5_000,
          policy,
        );
        expect(recordViolation(near, start, policy).blockedUntil).toBe(start + 10_000);
      }),
    );
  });
});
