import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { algorithms, maxCostOf } from '../src/algorithms/index.js';
import { type AlgorithmName, capacityOf, type LimitPolicy } from '../src/policy.js';
import { policyArb } from './policy-arbitrary.js';

interface Request {
  gap: number;
  cost: number;
}

const requestsArb = (maxGap: number) =>
  fc.array(fc.record({ gap: fc.integer({ min: 0, max: maxGap }), cost: fc.integer({ min: 0, max: 3 }) }), {
    minLength: 1,
    maxLength: 120,
  });

const startArb = fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 });
/** A start time for worked examples. */
const start0 = 1_700_000_000_000;

/** Runs the requests through an algorithm; returns admitted (time, cost) pairs and every step. */
function run(algorithm: AlgorithmName, policy: LimitPolicy, start: number, requests: Request[]) {
  const { step } = algorithms[algorithm];
  let state: unknown;
  let now = start;
  const admitted: { time: number; cost: number }[] = [];
  const steps: { now: number; cost: number; before: unknown; allowed: boolean; retryAfterMs: number }[] = [];
  for (const request of requests) {
    now += request.gap;
    const before = state;
    const result = step(state, now, request.cost, policy);
    steps.push({
      now,
      cost: request.cost,
      before,
      allowed: result.decision.allowed,
      retryAfterMs: result.decision.retryAfterMs,
    });
    expect(result.decision.remaining).toBeGreaterThanOrEqual(0);
    expect(result.decision.resetMs).toBeGreaterThanOrEqual(0);
    if (result.decision.allowed) {
      admitted.push({ time: now, cost: request.cost });
      state = result.state;
    } else {
      // A refused request consumes nothing: keeping the old state must be equivalent.
      expect(step(before, now, 0, policy).decision.remaining).toBe(result.decision.remaining);
    }
  }
  return { admitted, steps, state, now };
}

const all: AlgorithmName[] = [
  'fixed-window',
  'sliding-window',
  'sliding-log',
  'token-bucket',
  'leaky-bucket',
];

describe('algorithms never admit more than the policy allows', () => {
  it('fixed window matches the reference model exactly', () => {
    fc.assert(
      fc.property(policyArb('fixed-window'), startArb, requestsArb(1_500), (policy, start, requests) => {
        const { steps } = run('fixed-window', policy, start, requests);
        const used = new Map<number, number>();
        for (const step of steps) {
          const window = Math.floor(step.now / policy.windowMs);
          const count = used.get(window) ?? 0;
          const expected = count + step.cost <= policy.limit;
          expect(step.allowed).toBe(expected);
          if (expected) used.set(window, count + step.cost);
        }
      }),
    );
  });

  it('sliding log matches the reference model exactly and bounds every sliding window', () => {
    fc.assert(
      fc.property(policyArb('sliding-log'), startArb, requestsArb(1_500), (policy, start, requests) => {
        const { steps, admitted } = run('sliding-log', policy, start, requests);
        const model: { time: number; cost: number }[] = [];
        for (const step of steps) {
          const inWindow = model
            .filter((entry) => entry.time > step.now - policy.windowMs)
            .reduce((sum, entry) => sum + entry.cost, 0);
          const expected = inWindow + step.cost <= policy.limit;
          expect(step.allowed).toBe(expected);
          if (expected) model.push({ time: step.now, cost: step.cost });
        }
        for (const entry of admitted) {
          const sum = admitted
            .filter((other) => other.time > entry.time - policy.windowMs && other.time <= entry.time)
            .reduce((total, other) => total + other.cost, 0);
          expect(sum).toBeLessThanOrEqual(policy.limit);
        }
      }),
    );
  });

  it('sliding window matches the weighted-counter model and bounds every aligned window', () => {
    fc.assert(
      fc.property(policyArb('sliding-window'), startArb, requestsArb(1_500), (policy, start, requests) => {
        const { steps, admitted } = run('sliding-window', policy, start, requests);
        const counts = new Map<number, number>();
        for (const step of steps) {
          const window = Math.floor(step.now / policy.windowMs);
          const previous = counts.get(window - 1) ?? 0;
          const current = counts.get(window) ?? 0;
          const elapsed = step.now - window * policy.windowMs;
          const estimate = (previous * (policy.windowMs - elapsed)) / policy.windowMs + current;
          const expected = estimate + step.cost <= policy.limit + 1e-9;
          expect(step.allowed).toBe(expected);
          if (expected) counts.set(window, current + step.cost);
        }
        const perWindow = new Map<number, number>();
        for (const entry of admitted) {
          const window = Math.floor(entry.time / policy.windowMs);
          perWindow.set(window, (perWindow.get(window) ?? 0) + entry.cost);
        }
        for (const sum of perWindow.values()) expect(sum).toBeLessThanOrEqual(policy.limit);
      }),
    );
  });

  for (const algorithm of ['token-bucket', 'leaky-bucket'] as const) {
    it(`${algorithm} admits at most capacity + rate × elapsed in every interval`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(800), (policy, start, requests) => {
          const { admitted } = run(algorithm, policy, start, requests);
          const capacity = capacityOf(policy);
          for (let first = 0; first < admitted.length; first += 1) {
            let sum = 0;
            for (let last = first; last < admitted.length; last += 1) {
              sum += admitted[last]!.cost;
              const elapsed = admitted[last]!.time - admitted[first]!.time;
              // Integer form of sum ≤ capacity + elapsed × limit / windowMs.
              expect(sum * policy.windowMs).toBeLessThanOrEqual(
                capacity * policy.windowMs + elapsed * policy.limit,
              );
            }
          }
        }),
      );
    });
  }
});

describe('retry and reset times are exact', () => {
  for (const algorithm of all) {
    it(`${algorithm}: a refused request fits at now + retryAfterMs and not 1 ms earlier`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(400), (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          const { steps } = run(algorithm, policy, start, requests);
          for (const refused of steps.filter((entry) => !entry.allowed)) {
            if (refused.cost > capacityOf(policy)) continue;
            const at = refused.now + refused.retryAfterMs;
            expect(step(refused.before, at, refused.cost, policy).decision.allowed).toBe(true);
            if (refused.retryAfterMs > 0)
              expect(step(refused.before, at - 1, refused.cost, policy).decision.allowed).toBe(false);
          }
        }),
      );
    });

    it(`${algorithm}: the whole quota is back at now + resetMs and not 1 ms earlier`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, requestsArb(400), (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          const { state, now } = run(algorithm, policy, start, requests);
          const probe = step(state, now, 0, policy).decision;
          const capacity = capacityOf(policy);
          expect(step(state, now + probe.resetMs, 0, policy).decision.remaining).toBe(capacity);
          if (probe.resetMs > 0)
            expect(step(state, now + probe.resetMs - 1, 0, policy).decision.remaining).toBeLessThan(capacity);
        }),
      );
    });

    it(`${algorithm}: more than remaining is back at now + nextMs and not 1 ms earlier (RateLimit t)`, () => {
      // A leaky bucket sometimes queues: a level above its capacity leaks first.
      const anyPolicyArb =
        algorithm === 'leaky-bucket'
          ? fc
              .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }))
              .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }))
          : policyArb(algorithm);
      fc.assert(
        fc.property(anyPolicyArb, startArb, requestsArb(400), (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          const { state, now } = run(algorithm, policy, start, requests);
          const probe = step(state, now, 0, policy).decision;
          const capacity = capacityOf(policy);
          expect(probe.nextMs).toBeGreaterThanOrEqual(0);
          expect(probe.nextMs).toBeLessThanOrEqual(probe.resetMs);
          // 0 exactly when nothing more can come back: the whole quota is there.
          expect(probe.nextMs === 0).toBe(probe.remaining === capacity);
          if (probe.nextMs === 0) return;
          expect(step(state, now + probe.nextMs, 0, policy).decision.remaining).toBeGreaterThan(
            probe.remaining,
          );
          expect(step(state, now + probe.nextMs - 1, 0, policy).decision.remaining).toBe(probe.remaining);
          // The request a client sends after waiting t, rounded up to whole seconds, is admitted.
          const t = Math.ceil(probe.nextMs / 1_000) * 1_000;
          expect(step(state, now + t, 1, policy).decision.allowed).toBe(true);
        }),
      );
    });
  }
});

describe('leaky bucket queue mode', () => {
  it('delays instead of refusing, spacing requests at the leak rate, within queueMaxDelayMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 10, max: 2_000 }),
        fc.integer({ min: 0, max: 5_000 }),
        startArb,
        (limit, windowMs, queueMaxDelayMs, start) => {
          const policy: LimitPolicy = {
            name: 'q',
            algorithm: 'leaky-bucket',
            limit,
            windowMs,
            burst: 1,
            queueMaxDelayMs,
          };
          const { step } = algorithms['leaky-bucket'];
          let state: unknown;
          const releases: number[] = [];
          for (let index = 0; index < 30; index += 1) {
            const result = step(state, start, 1, policy);
            if (!result.decision.allowed) break;
            expect(result.decision.delayMs).toBeLessThanOrEqual(queueMaxDelayMs);
            releases.push(start + result.decision.delayMs);
            state = result.state;
          }
          expect(releases[0]).toBe(start);
          for (let index = 1; index < releases.length; index += 1) {
            const gap = releases[index]! - releases[index - 1]!;
            // Spacing is windowMs / limit, rounded up to whole milliseconds per release.
            expect(gap).toBeGreaterThanOrEqual(Math.floor(windowMs / limit));
            expect(gap).toBeLessThanOrEqual(Math.ceil(windowMs / limit));
          }
        },
      ),
    );
  });
});

describe('leaky bucket queue mode under any traffic', () => {
  it('releases (now + delayMs) never outrun the rate, and every delay is within queueMaxDelayMs', () => {
    fc.assert(
      fc.property(
        policyArb('leaky-bucket'),
        fc.integer({ min: 0, max: 5_000 }),
        startArb,
        requestsArb(600),
        (base, queueMaxDelayMs, start, requests) => {
          const policy: LimitPolicy = { ...base, queueMaxDelayMs };
          const { step } = algorithms['leaky-bucket'];
          let state: unknown;
          let now = start;
          const releases: { at: number; cost: number }[] = [];
          for (const request of requests) {
            now += request.gap;
            const { decision, state: next } = step(state, now, request.cost, policy);
            if (!decision.allowed) continue;
            state = next;
            expect(decision.delayMs).toBeGreaterThanOrEqual(0);
            expect(decision.delayMs).toBeLessThanOrEqual(queueMaxDelayMs);
            // A cost of 0 carries nothing and goes at once, out of the queue's order.
            if (request.cost > 0) releases.push({ at: now + decision.delayMs, cost: request.cost });
          }
          // In release order: what goes after a release, up to any later one, is at most the
          // burst plus the leak over the span between them, give or take the millisecond each
          // release is rounded up to. (A request goes out whole: one of cost 3 on a burst of 1
          // leaves at once, and the next waits the leak of all 3.)
          releases.sort((a, b) => a.at - b.at);
          for (let first = 0; first < releases.length; first += 1) {
            let sum = 0;
            for (let last = first + 1; last < releases.length; last += 1) {
              sum += releases[last]!.cost;
              const span = releases[last]!.at - releases[first]!.at;
              expect(sum * policy.windowMs).toBeLessThanOrEqual(
                capacityOf(policy) * policy.windowMs + (span + 1) * policy.limit,
              );
            }
          }
        },
      ),
    );
  });
});

describe('a cost of 0', () => {
  it("is admitted without a delay, even behind a queueing leaky bucket's queue (it adds nothing to it)", () => {
    fc.assert(
      fc.property(
        policyArb('leaky-bucket'),
        fc.integer({ min: 0, max: 5_000 }),
        startArb,
        requestsArb(300),
        (base, queueMaxDelayMs, start, requests) => {
          const policy: LimitPolicy = { ...base, queueMaxDelayMs };
          const { step } = algorithms['leaky-bucket'];
          let state: unknown;
          let now = start;
          for (const request of requests) {
            now += request.gap;
            const free = step(state, now, 0, policy).decision;
            expect(free.allowed).toBe(true);
            expect(free.delayMs).toBe(0);
            const { decision, state: next } = step(state, now, request.cost, policy);
            if (decision.allowed) state = next;
          }
        },
      ),
    );
  });
});

describe('a clock that goes back (another server after a failover, an NTP step)', () => {
  /** Requests whose gaps may be negative: the clock steps back by up to two windows. */
  const unsteadyArb = fc.array(
    fc.record({ gap: fc.integer({ min: -6_000, max: 3_000 }), cost: fc.integer({ min: 0, max: 3 }) }),
    { minLength: 1, maxLength: 120 },
  );

  for (const algorithm of all) {
    it(`${algorithm}: remaining stays within the quota, reset and retry times are never negative`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, unsteadyArb, (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          let state: unknown;
          let now = start;
          for (const request of requests) {
            now += request.gap;
            const { decision, state: next } = step(state, now, request.cost, policy);
            if (decision.allowed) state = next;
            expect(decision.remaining).toBeGreaterThanOrEqual(0);
            expect(decision.remaining).toBeLessThanOrEqual(decision.limit);
            expect(decision.resetMs).toBeGreaterThanOrEqual(0);
            expect(decision.retryAfterMs).toBeGreaterThanOrEqual(0);
            if (!decision.allowed && request.cost <= capacityOf(policy))
              expect(decision.retryAfterMs).toBeGreaterThan(0);
          }
        }),
      );
    });
  }

  /**
   * The time a request counts at: the latest of its own and every admitted request's. A request
   * whose clock went back must count in the state's window or bucket as it stands, never in an
   * older window (whose count is 0) nor with an older bucket time (which a later check would
   * refill or leak again).
   */
  function countedAt(algorithm: AlgorithmName, policy: LimitPolicy, start: number, requests: Request[]) {
    const { step } = algorithms[algorithm];
    let state: unknown;
    let now = start;
    let latest = Number.NEGATIVE_INFINITY;
    const admitted: { time: number; cost: number }[] = [];
    for (const request of requests) {
      now += request.gap;
      const { decision, state: next } = step(state, now, request.cost, policy);
      if (!decision.allowed) continue;
      state = next;
      latest = Math.max(latest, now);
      admitted.push({ time: latest, cost: request.cost });
    }
    return admitted;
  }

  for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
    it(`${algorithm}: admits at most the limit in every aligned window of the counted-at times`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, unsteadyArb, (policy, start, requests) => {
          const perWindow = new Map<number, number>();
          for (const entry of countedAt(algorithm, policy, start, requests)) {
            const window = Math.floor(entry.time / policy.windowMs);
            perWindow.set(window, (perWindow.get(window) ?? 0) + entry.cost);
          }
          for (const sum of perWindow.values()) expect(sum).toBeLessThanOrEqual(policy.limit);
        }),
      );
    });
  }

  it('sliding log: admits at most the limit in every sliding window of the logged times, cost 0 included', () => {
    // A log keeps no time but its entries': a request is logged at the newest entry's time when
    // the clock went back (and a cost-0 check logs nothing). A cost-0 check at a time past the
    // newest entry must not drop the entries that left its window: a later request whose clock
    // went back is logged before that time, in a window where they still count.
    fc.assert(
      fc.property(policyArb('sliding-log'), startArb, unsteadyArb, (policy, start, requests) => {
        const { step } = algorithms['sliding-log'];
        let state: unknown;
        let now = start;
        let newest = Number.NEGATIVE_INFINITY;
        const logged: { time: number; cost: number }[] = [];
        for (const request of requests) {
          now += request.gap;
          const { decision, state: next } = step(state, now, request.cost, policy);
          if (!decision.allowed) continue;
          state = next;
          if (request.cost === 0) continue;
          newest = Math.max(newest, now);
          logged.push({ time: newest, cost: request.cost });
        }
        for (const entry of logged) {
          const sum = logged
            .filter((other) => other.time > entry.time - policy.windowMs && other.time <= entry.time)
            .reduce((total, other) => total + other.cost, 0);
          expect(sum).toBeLessThanOrEqual(policy.limit);
        }
      }),
    );
  });

  it('sliding log: a cost-0 check ahead of the newest entry, then a clock back, admits no more than the limit', () => {
    const policy: LimitPolicy = { name: 'p', algorithm: 'sliding-log', limit: 2, windowMs: 1_000 };
    const { step } = algorithms['sliding-log'];
    let state: unknown;
    const allowed: boolean[] = [];
    // Logged at 0 and 500; a free check at 1,600; the clock back to 1,100, where 500 still counts.
    for (const [now, cost] of [
      [0, 1],
      [500, 1],
      [1_600, 0],
      [1_100, 1],
      [1_150, 1],
    ] as const) {
      const result = step(state, start0 + now, cost, policy);
      allowed.push(result.decision.allowed);
      if (result.decision.allowed) state = result.state;
    }
    expect(allowed).toEqual([true, true, true, true, false]);
  });

  for (const algorithm of ['token-bucket', 'leaky-bucket'] as const) {
    it(`${algorithm}: admits at most capacity + rate × elapsed between any two counted-at times`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, unsteadyArb, (policy, start, requests) => {
          const admitted = countedAt(algorithm, policy, start, requests);
          for (let first = 0; first < admitted.length; first += 1) {
            let sum = 0;
            for (let last = first; last < admitted.length; last += 1) {
              sum += admitted[last]!.cost;
              const elapsed = admitted[last]!.time - admitted[first]!.time;
              expect(sum * policy.windowMs).toBeLessThanOrEqual(
                capacityOf(policy) * policy.windowMs + elapsed * policy.limit,
              );
            }
          }
        }),
      );
    });
  }

  for (const algorithm of all) {
    it(`${algorithm}: a refused request fits at now + retryAfterMs and not 1 ms earlier`, () => {
      fc.assert(
        fc.property(policyArb(algorithm), startArb, unsteadyArb, (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          let state: unknown;
          let now = start;
          for (const request of requests) {
            now += request.gap;
            const { decision, state: next } = step(state, now, request.cost, policy);
            if (decision.allowed) {
              state = next;
              continue;
            }
            if (request.cost > capacityOf(policy)) continue;
            const at = now + decision.retryAfterMs;
            expect(step(state, at, request.cost, policy).decision.allowed).toBe(true);
            expect(step(state, at - 1, request.cost, policy).decision.allowed).toBe(false);
          }
        }),
      );
    });
  }

  it('sliding log counts every logged request still inside the window, as Redis (a sorted set) does', () => {
    fc.assert(
      fc.property(policyArb('sliding-log'), startArb, unsteadyArb, (policy, start, requests) => {
        const { step } = algorithms['sliding-log'];
        let state: unknown;
        let now = start;
        // The Lua script's model: entries inside the window, whatever their order; an admission
        // keeps only those (the others left the window) and adds itself, at the newest entry's
        // time when the clock went back.
        let logged: { time: number; cost: number }[] = [];
        for (const request of requests) {
          now += request.gap;
          const inside = logged.filter((entry) => entry.time > now - policy.windowMs);
          const used = inside.reduce((sum, entry) => sum + entry.cost, 0);
          const { decision, state: next } = step(state, now, request.cost, policy);
          expect(decision.allowed).toBe(used + request.cost <= policy.limit);
          if (decision.allowed) {
            state = next;
            // A cost-0 check changes nothing: it keeps the entries outside its window too.
            const time = Math.max(now, ...inside.map((entry) => entry.time));
            if (request.cost > 0) logged = [...inside, { time, cost: request.cost }];
          }
        }
      }),
    );
  });
});

describe('leaky bucket queue mode when the clock goes back', () => {
  // After a step back the bucket's time is ahead of the clock, and nothing leaks until the clock
  // catches up. A queued request's delay is still within queueMaxDelayMs (the middleware holds
  // the request for the delay), and is not lengthened by the step.
  const queuedArb = fc
    .tuple(policyArb('leaky-bucket'), fc.integer({ min: 0, max: 5_000 }))
    .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }));
  const unsteadyArb = fc.array(
    fc.record({ gap: fc.integer({ min: -6_000, max: 3_000 }), cost: fc.integer({ min: 0, max: 3 }) }),
    { minLength: 1, maxLength: 120 },
  );

  it('every delay is within queueMaxDelayMs', () => {
    fc.assert(
      fc.property(queuedArb, startArb, unsteadyArb, (policy, start, requests) => {
        const { step } = algorithms['leaky-bucket'];
        let state: unknown;
        let now = start;
        for (const request of requests) {
          now += request.gap;
          const { decision, state: next } = step(state, now, request.cost, policy);
          if (!decision.allowed) continue;
          state = next;
          expect(decision.delayMs).toBeLessThanOrEqual(policy.queueMaxDelayMs!);
        }
      }),
    );
  });

  it('a refused request fits at now + retryAfterMs and not 1 ms earlier', () => {
    fc.assert(
      fc.property(queuedArb, startArb, unsteadyArb, (policy, start, requests) => {
        const { step } = algorithms['leaky-bucket'];
        let state: unknown;
        let now = start;
        for (const request of requests) {
          now += request.gap;
          const { decision, state: next } = step(state, now, request.cost, policy);
          if (decision.allowed) {
            state = next;
            continue;
          }
          if (decision.retryAfterMs === Number.POSITIVE_INFINITY) continue;
          const at = now + decision.retryAfterMs;
          expect(decision.retryAfterMs).toBeGreaterThan(0);
          expect(step(state, at, request.cost, policy).decision.allowed).toBe(true);
          expect(step(state, at - 1, request.cost, policy).decision.allowed).toBe(false);
        }
      }),
    );
  });

  it('a request queued behind a bucket 10 s ahead of the clock waits the leak, not the leak plus 10 s', () => {
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'leaky-bucket',
      limit: 1,
      windowMs: 1_000,
      burst: 1,
      queueMaxDelayMs: 1_000,
    };
    const { step } = algorithms['leaky-bucket'];
    const first = step(undefined, start0 + 10_000, 1, policy);
    const queued = step(first.state, start0, 1, policy);
    expect(queued.decision).toMatchObject({ allowed: true, delayMs: 1_000 });
    // The queue (1 s) is then full until the bucket leaks, from its own time on: exact retry.
    expect(step(queued.state, start0 + 1, 1, policy).decision).toMatchObject({
      allowed: false,
      retryAfterMs: 10_999,
    });
  });

  it('releases never outrun the rate in real time when the clock only steps back', () => {
    // Real time goes on; the clock reads it minus an offset that only grows (steps back, of up
    // to 6 s each). A queued request leaves at its real check time plus its delay: in release
    // order, what leaves after a release, up to any later one, is at most the burst plus the
    // leak over the real span between them (give or take the ms each release is rounded up to).
    const backArb = fc.array(
      fc.record({
        gap: fc.integer({ min: 0, max: 3_000 }),
        back: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 6_000 })),
        cost: fc.integer({ min: 0, max: 3 }),
      }),
      { minLength: 1, maxLength: 120 },
    );
    fc.assert(
      fc.property(queuedArb, startArb, backArb, (policy, start, requests) => {
        const { step } = algorithms['leaky-bucket'];
        let state: unknown;
        let real = start;
        let offset = 0;
        const releases: { at: number; cost: number }[] = [];
        for (const request of requests) {
          real += request.gap;
          offset += request.back;
          const { decision, state: next } = step(state, real - offset, request.cost, policy);
          if (!decision.allowed) continue;
          state = next;
          if (request.cost > 0) releases.push({ at: real + decision.delayMs, cost: request.cost });
        }
        releases.sort((a, b) => a.at - b.at);
        for (let first = 0; first < releases.length; first += 1) {
          let sum = 0;
          for (let last = first + 1; last < releases.length; last += 1) {
            sum += releases[last]!.cost;
            const span = releases[last]!.at - releases[first]!.at;
            expect(sum * policy.windowMs).toBeLessThanOrEqual(
              capacityOf(policy) * policy.windowMs + (span + 1) * policy.limit,
            );
          }
        }
      }),
    );
  });
});

describe('a cost above what a limit can ever admit', () => {
  /** The largest cost an empty limit admits, computed from the policy (the reference model). */
  const maxCost = (policy: LimitPolicy): number =>
    policy.algorithm === 'leaky-bucket'
      ? Math.floor(
          (capacityOf(policy) * policy.windowMs + (policy.queueMaxDelayMs ?? 0) * policy.limit) /
            policy.windowMs,
        )
      : capacityOf(policy);
  /** policyArb, with a queueing leaky bucket sometimes (whose queue admits more than its burst). */
  const anyPolicyArb = (algorithm: AlgorithmName) =>
    algorithm === 'leaky-bucket'
      ? fc
          .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 5_000 }), { nil: undefined }))
          .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }))
      : policyArb(algorithm);

  for (const algorithm of all) {
    it(`${algorithm}: is refused on any state with retryAfterMs Infinity (never), counts nothing, and never fits later`, () => {
      fc.assert(
        fc.property(
          anyPolicyArb(algorithm),
          startArb,
          requestsArb(400),
          fc.integer({ min: 1, max: 50 }),
          fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 5 }),
          (policy, start, requests, over, later) => {
            const { step } = algorithms[algorithm];
            // The limiter's up-front test (maxCostOf) is the model's.
            expect(maxCostOf(policy)).toBe(maxCost(policy));
            const cost = maxCost(policy) + over;
            // On an unused key first (where the buckets and the log answered "retry in 0 ms").
            const fresh = step(undefined, start, cost, policy).decision;
            expect(fresh).toMatchObject({
              allowed: false,
              retryAfterMs: Number.POSITIVE_INFINITY,
              delayMs: 0,
            });
            expect(fresh.remaining).toBe(step(undefined, start, 0, policy).decision.remaining);
            expect(step(undefined, start, maxCost(policy), policy).decision.allowed).toBe(true);
            const { state, now } = run(algorithm, policy, start, requests);
            const refused = step(state, now, cost, policy).decision;
            expect(refused).toMatchObject({
              allowed: false,
              retryAfterMs: Number.POSITIVE_INFINITY,
              delayMs: 0,
            });
            const probe = step(state, now, 0, policy).decision;
            expect(refused.remaining).toBe(probe.remaining);
            expect(refused.resetMs).toBe(probe.resetMs);
            for (const ms of later) expect(step(state, now + ms, cost, policy).decision.allowed).toBe(false);
          },
        ),
      );
    });
  }
});

describe('huge and odd windows (up to ~35 years, primes), large limits and costs', () => {
  const bigPolicyArb = (algorithm: AlgorithmName) =>
    fc
      .record({
        limit: fc.integer({ min: 1, max: 10_000 }),
        windowMs: fc.oneof(
          fc.integer({ min: 1, max: 2 ** 40 }),
          fc.constantFrom(2 ** 40, 86_400_000, 31_536_000_000, 999_999_937),
        ),
        burst: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
      })
      .map(
        ({ limit, windowMs, burst }): LimitPolicy => ({
          name: 'p',
          algorithm,
          limit,
          windowMs,
          burst: algorithm === 'token-bucket' || algorithm === 'leaky-bucket' ? burst : undefined,
        }),
      )
      // What the schema accepts: a bucket keeps points × windowMs below 2^53.
      .filter((policy) => capacityOf(policy) * policy.windowMs <= Number.MAX_SAFE_INTEGER);
  const hugeStepsArb = fc.array(
    fc.record({
      gap: fc.oneof(fc.integer({ min: -1_000, max: 1_000 }), fc.integer({ min: 0, max: 2 ** 40 })),
      cost: fc.integer({ min: 0, max: 20 }),
    }),
    { maxLength: 40 },
  );

  for (const algorithm of all) {
    it(`${algorithm}: integer times, remaining within the quota, a refusal fits at now + retryAfterMs and not 1 ms earlier`, () => {
      fc.assert(
        fc.property(bigPolicyArb(algorithm), startArb, hugeStepsArb, (policy, start, requests) => {
          const { step } = algorithms[algorithm];
          let state: unknown;
          let now = start;
          for (const request of requests) {
            now += request.gap;
            const { decision, state: next } = step(state, now, request.cost, policy);
            expect(Number.isInteger(decision.resetMs)).toBe(true);
            expect(decision.remaining).toBeGreaterThanOrEqual(0);
            expect(decision.remaining).toBeLessThanOrEqual(capacityOf(policy));
            if (decision.allowed) {
              state = next;
              continue;
            }
            if (request.cost > capacityOf(policy)) continue;
            expect(Number.isInteger(decision.retryAfterMs)).toBe(true);
            expect(step(state, now + decision.retryAfterMs, request.cost, policy).decision.allowed).toBe(
              true,
            );
            expect(step(state, now + decision.retryAfterMs - 1, request.cost, policy).decision.allowed).toBe(
              false,
            );
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});
