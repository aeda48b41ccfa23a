import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { adjusters, algorithms } from '../src/algorithms/index.js';
import { type AlgorithmName, algorithmNames, capacityOf, type LimitPolicy } from '../src/policy.js';
import { policyArb } from './policy-arbitrary.js';

/** One operation on a key: a check of `points`, a refund or a penalty, after `gap` ms. */
interface Operation {
  kind: 'check' | 'refund' | 'penalize';
  gap: number;
  points: number;
}

const operationsArb = fc.array(
  fc.record({
    kind: fc.constantFrom<Operation['kind']>('check', 'check', 'refund', 'penalize'),
    gap: fc.integer({ min: 0, max: 1_500 }),
    points: fc.integer({ min: 0, max: 4 }),
  }),
  { maxLength: 60 },
);

const startArb = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });

/** Runs `operations` on one key from `start`; returns the state and the time reached. */
function apply(algorithm: AlgorithmName, policy: LimitPolicy, start: number, operations: Operation[]) {
  let state: unknown;
  let now = start;
  for (const operation of operations) {
    now += operation.gap;
    if (operation.kind === 'check') {
      const step = algorithms[algorithm].step(state, now, operation.points, policy);
      if (step.decision.allowed) state = step.state;
    } else state = adjusters[algorithm][operation.kind](state, now, operation.points, policy);
  }
  return { state, now };
}

/** What a cost-0 check (a peek) reports for `state` at `now`. */
const peek = (algorithm: AlgorithmName, state: unknown, now: number, policy: LimitPolicy) =>
  algorithms[algorithm].step(state, now, 0, policy).decision;

describe.each(algorithmNames)('%s refund and penalty', (algorithm) => {
  it('consume(c) then refund(c) at the same instant: every next check decides as if nothing was consumed', () => {
    fc.assert(
      fc.property(
        policyArb(algorithm),
        startArb,
        operationsArb,
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 0, max: 4_000 }),
        (policy, start, operations, cost, nextCost, later) => {
          const { state, now } = apply(algorithm, policy, start, operations);
          const consumed = algorithms[algorithm].step(state, now, cost, policy);
          fc.pre(consumed.decision.allowed);
          const refunded = adjusters[algorithm].refund(consumed.state, now, cost, policy);
          for (const at of [now, now + later]) {
            expect(algorithms[algorithm].step(refunded, at, nextCost, policy).decision).toEqual(
              algorithms[algorithm].step(state, at, nextCost, policy).decision,
            );
          }
        },
      ),
    );
  });

  it('a refund gives back at most its points and never more than the capacity', () => {
    fc.assert(
      fc.property(
        policyArb(algorithm),
        startArb,
        operationsArb,
        fc.integer({ min: 0, max: 6 }),
        (policy, start, operations, points) => {
          const { state, now } = apply(algorithm, policy, start, operations);
          const before = peek(algorithm, state, now, policy);
          const after = peek(algorithm, adjusters[algorithm].refund(state, now, points, policy), now, policy);
          expect(after.remaining).toBeGreaterThanOrEqual(before.remaining);
          expect(after.remaining).toBeLessThanOrEqual(before.remaining + points);
          expect(after.remaining).toBeLessThanOrEqual(capacityOf(policy));
          // A refund never makes a cost-0 check refuse.
          if (before.allowed) expect(after.allowed).toBe(true);
        },
      ),
    );
  });

  it('a penalty takes its points off remaining, down to 0 and never below the floor', () => {
    fc.assert(
      fc.property(
        policyArb(algorithm),
        startArb,
        operationsArb,
        fc.integer({ min: 0, max: 20 }),
        (policy, start, operations, points) => {
          const { state, now } = apply(algorithm, policy, start, operations);
          const before = peek(algorithm, state, now, policy);
          const penalized = adjusters[algorithm].penalize(state, now, points, policy);
          const after = peek(algorithm, penalized, now, policy);
          expect(after.remaining).toBe(Math.max(0, before.remaining - points));
          // Remaining 0 is the floor: a cost-0 check that passed still passes.
          if (before.allowed) expect(after.allowed).toBe(true);
          // A penalty is counted: with any points it leaves no room for a request as large.
          if (points > 0 && points <= before.remaining)
            expect(
              algorithms[algorithm].step(penalized, now, before.remaining - points + 1, policy).decision
                .allowed,
            ).toBe(false);
        },
      ),
    );
  });

  it('a refund after its window or bucket has fully recovered changes no decision', () => {
    fc.assert(
      fc.property(
        policyArb(algorithm),
        startArb,
        operationsArb,
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 5 }),
        (policy, start, operations, points, nextCost) => {
          const { state, now } = apply(algorithm, policy, start, operations);
          // Two windows later every algorithm has forgotten the operations above.
          const later = now + 2 * policy.windowMs * Math.max(1, capacityOf(policy));
          const refunded = adjusters[algorithm].refund(state, later, points, policy);
          expect(algorithms[algorithm].step(refunded, later, nextCost, policy).decision).toEqual(
            algorithms[algorithm].step(undefined, later, nextCost, policy).decision,
          );
        },
      ),
    );
  });
});

/** Net points per fixed window: admitted costs minus what refunds gave back (a reference model). */
describe('refunds never admit more than the policy allows in any window', () => {
  it('fixed window: admitted minus refunded per window stays within the limit, and matches the model', () => {
    fc.assert(
      fc.property(policyArb('fixed-window'), startArb, operationsArb, (policy, start, operations) => {
        let state: unknown;
        let now = start;
        const net = new Map<number, number>();
        for (const operation of operations) {
          now += operation.gap;
          const window = Math.floor(now / policy.windowMs);
          const count = net.get(window) ?? 0;
          if (operation.kind === 'check') {
            const step = algorithms['fixed-window'].step(state, now, operation.points, policy);
            expect(step.decision.allowed).toBe(count + operation.points <= policy.limit);
            if (step.decision.allowed) {
              state = step.state;
              net.set(window, count + operation.points);
            }
          } else {
            state = adjusters['fixed-window'][operation.kind](state, now, operation.points, policy);
            const next =
              operation.kind === 'refund'
                ? Math.max(0, count - operation.points)
                : Math.max(count, Math.min(policy.limit, count + operation.points));
            net.set(window, next);
          }
          expect(net.get(window) ?? 0).toBeLessThanOrEqual(policy.limit);
        }
      }),
    );
  });

  it('sliding log: the points logged in every sliding window stay within the limit', () => {
    fc.assert(
      fc.property(policyArb('sliding-log'), startArb, operationsArb, (policy, start, operations) => {
        let state: { times: number[]; costs: number[] } | undefined;
        let now = start;
        for (const operation of operations) {
          now += operation.gap;
          if (operation.kind === 'check') {
            const step = algorithms['sliding-log'].step(state, now, operation.points, policy);
            if (step.decision.allowed) state = step.state as typeof state;
          } else
            state = adjusters['sliding-log'][operation.kind](
              state,
              now,
              operation.points,
              policy,
            ) as typeof state;
          const inWindow = (state?.times ?? []).reduce(
            (sum, time, index) => (time > now - policy.windowMs ? sum + state!.costs[index]! : sum),
            0,
          );
          expect(inWindow).toBeLessThanOrEqual(policy.limit);
          expect(state?.costs.every((cost) => cost > 0) ?? true).toBe(true);
        }
      }),
    );
  });
});

describe('adjustments when the clock went back (another server after a failover, an NTP step)', () => {
  /** Operations whose clock may step back by up to two windows. */
  const unsteadyArb = fc.array(
    fc.record({
      kind: fc.constantFrom<Operation['kind']>('check', 'check', 'refund', 'penalize'),
      gap: fc.integer({ min: -6_000, max: 1_500 }),
      points: fc.integer({ min: 0, max: 4 }),
    }),
    { maxLength: 60 },
  );

  for (const algorithm of algorithmNames) {
    it(`${algorithm}: a penalty never raises and a refund never raises by more than its points what is left later`, () => {
      fc.assert(
        fc.property(
          policyArb(algorithm),
          startArb,
          unsteadyArb,
          fc.integer({ min: -6_000, max: 0 }),
          fc.integer({ min: 1, max: 4 }),
          fc.array(fc.integer({ min: 0, max: 6_000 }), { minLength: 1, maxLength: 4 }),
          (policy, start, operations, back, points, later) => {
            const { state, now } = apply(algorithm, policy, start, operations);
            // The latest time the state can be of: the sequence's largest.
            let latest = start;
            let at = start;
            for (const operation of operations) {
              at += operation.gap;
              latest = Math.max(latest, at);
            }
            const adjustedAt = now + back;
            const penalized = adjusters[algorithm].penalize(state, adjustedAt, points, policy);
            const refunded = adjusters[algorithm].refund(state, adjustedAt, points, policy);
            for (const ms of later) {
              const then = Math.max(latest, adjustedAt) + ms;
              const before = peek(algorithm, state, then, policy).remaining;
              expect(peek(algorithm, penalized, then, policy).remaining).toBeLessThanOrEqual(before);
              expect(peek(algorithm, refunded, then, policy).remaining).toBeLessThanOrEqual(before + points);
            }
          },
        ),
      );
    });
  }
});
