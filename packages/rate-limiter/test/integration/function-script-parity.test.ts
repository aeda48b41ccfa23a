import { startPrivateRedisOrSkip } from '@noa/testkit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AutoBlockPolicy } from '../../src/auto-block.js';
import type { LimitPolicy } from '../../src/policy.js';
import { RedisStore } from '../../src/stores/redis-store.js';
import type { ConsumeOutcome, StoreAdjustment } from '../../src/stores/store.js';
import { privateRedisConnections } from './redis-fixture.js';

// Loaded as a Redis function, check.lua keeps its per-call state (KEYS, ARGV, now, the reply,
// the number cache, the batch scratch) in library-level locals that outlive each call; as a
// script every call starts afresh. Calls of every shape, alternated on one connection, must
// decide alike either way: no call may see what an earlier one left.

const { redis, skip } = await startPrivateRedisOrSkip();

// Windows of ~35 years: no window starts and no bucket refills mid-run, so both runs of a
// sequence (a few ms apart) see the same counts.
const windowMs = 2 ** 40;
const rules: Record<string, LimitPolicy[]> = {
  fixed: [{ name: 'f', algorithm: 'fixed-window', limit: 3, windowMs }],
  sliding: [{ name: 's', algorithm: 'sliding-window', limit: 2, windowMs }],
  bucket: [{ name: 'b', algorithm: 'token-bucket', limit: 3, windowMs, burst: 3 }],
  leaky: [{ name: 'l', algorithm: 'leaky-bucket', limit: 2, windowMs }],
  log: [{ name: 'g', algorithm: 'sliding-log', limit: 3, windowMs }],
  mixed: [
    { name: 'm1', algorithm: 'sliding-log', limit: 4, windowMs },
    { name: 'm2', algorithm: 'token-bucket', limit: 5, windowMs, burst: 5 },
    { name: 'm3', algorithm: 'fixed-window', limit: 3, windowMs },
  ],
};
/** Each key keeps one rule (its stored state is that rule's). */
const keys = Object.keys(rules);
const autoBlock: AutoBlockPolicy = {
  violations: 2,
  withinMs: windowMs,
  blockMs: 10 * windowMs,
  multiplier: 2,
  maxBlockMs: 100 * windowMs,
  forgetAfterMs: windowMs,
};

const keyArb = fc.constantFrom(...keys);
const costArb = fc.integer({ min: 0, max: 3 });
const adjustmentArb: fc.Arbitrary<StoreAdjustment> = fc.oneof(
  fc.constant({ operation: 'peek' as const }),
  fc.constant({ operation: 'unblock' as const }),
  fc.constant({ operation: 'block' as const, durationMs: windowMs }),
  fc.record({ operation: fc.constantFrom('refund' as const, 'penalize' as const), points: costArb }),
);
const stepArb = fc.oneof(
  fc.record({ kind: fc.constant('one' as const), key: keyArb, cost: costArb }),
  fc.record({
    kind: fc.constant('costs' as const),
    key: keyArb,
    costs: fc.array(costArb, { minLength: 1, maxLength: 3 }),
    auto: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('many' as const),
    requests: fc.array(fc.record({ key: keyArb, costs: fc.array(costArb, { minLength: 1, maxLength: 2 }) }), {
      minLength: 1,
      maxLength: 4,
    }),
    auto: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('adjust' as const),
    key: keyArb,
    adjustment: adjustmentArb,
    auto: fc.boolean(),
  }),
);
type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

/** What a caller sees of an outcome, leaving out times (each run reads its own clock). */
const visible = (outcome: ConsumeOutcome) => ({
  blocked: outcome.blockedMs > 0,
  decisions: outcome.decisions.map(({ allowed, remaining }) => ({ allowed, remaining })),
});

async function run(store: RedisStore, step: Step): Promise<unknown> {
  const block = (auto: boolean) => (auto ? autoBlock : undefined);
  switch (step.kind) {
    case 'one':
      return (await store.consume(step.key, rules[step.key]!, [step.cost], undefined)).map(visible);
    case 'costs':
      return (await store.consume(step.key, rules[step.key]!, step.costs, block(step.auto))).map(visible);
    case 'many': {
      const requests = step.requests.map(({ key, costs }) => ({ key, limits: rules[key]!, costs }));
      return (await store.consumeMany(requests, block(step.auto))).map((outcomes) => outcomes.map(visible));
    }
    case 'adjust':
      return visible(await store.adjust(step.key, rules[step.key]!, step.adjustment, block(step.auto)));
  }
}

describe.skipIf(skip !== undefined)('check.lua as a function and as a script, calls of every shape', () => {
  const { client } = privateRedisConnections(redis);

  it('decide alike, decision for decision, whatever shapes came before', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 30 }), async (steps) => {
        runs += 1;
        const asFunction = new RedisStore({ client, functions: true, prefix: `fn${runs}:` });
        const asScript = new RedisStore({ client, functions: false, prefix: `script${runs}:` });
        for (const step of steps) expect(await run(asFunction, step)).toEqual(await run(asScript, step));
        expect(asFunction.usesFunctions).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
});
