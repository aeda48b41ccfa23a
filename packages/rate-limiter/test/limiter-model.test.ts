import { ManualClock } from '@noa/core';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { createRateLimiter, type LimitInput, MemoryStore } from '../src/index.js';
import { LimiterModel, type ModelConfig } from './limiter-model.js';
import { commandsOf, limitArb, type ModelState, type Real } from './limiter-model-run.js';

// Model-based test of the public API on the memory store: random sequences of check, checkSync,
// consume, peek, refund, penalize, block, unblock, reset, resetAll and acquire, with the limiter's
// clock moved between them, each answer (result and headers) compared with the reference model of
// limiter-model.ts, which follows the README. Seeds: NOA_MODEL_SEED (and NOA_MODEL_PATH) rerun a failure (fast-check prints
// the seed and path of a failure).

const seed = process.env.NOA_MODEL_SEED === undefined ? undefined : Number(process.env.NOA_MODEL_SEED);
const path = process.env.NOA_MODEL_PATH;
const runs = Number(process.env.NOA_MODEL_RUNS ?? 300);

const windowArb = fc.constantFrom(1_000, 2_000, 5_000, 10_000);

const limitsArb = fc
  .uniqueArray(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 3 })
  .chain((names) => fc.tuple(...names.map((name) => limitArb(name, windowArb))));

const configArb: fc.Arbitrary<ModelConfig> = fc
  .record(
    {
      limits: limitsArb as fc.Arbitrary<LimitInput[]>,
      roles: fc.record({
        pro: fc.tuple(limitArb('p', windowArb)) as fc.Arbitrary<LimitInput[]>,
        admin: fc.constant('unlimited' as const),
      }),
      autoBlock: fc.option(
        fc
          .record({
            violations: fc.integer({ min: 1, max: 4 }),
            withinMs: fc.integer({ min: 1_000, max: 8_000 }),
            blockMs: fc.integer({ min: 500, max: 10_000 }),
            multiplier: fc.constantFrom(1, 1.5, 2, 3),
            growth: fc.integer({ min: 1, max: 8 }),
            forgetAfterMs: fc.integer({ min: 1_000, max: 40_000 }),
          })
          .map(({ growth, ...rest }) => ({ ...rest, maxBlockMs: rest.blockMs * growth })),
        { nil: undefined },
      ),
    },
    { requiredKeys: ['limits', 'roles'] },
  )
  .map((config) => ({ ...config, allow: ['10.0.0.0/8'], deny: ['192.0.2.0/24'] }));

const commands = commandsOf({
  keys: ['k1', 'k2'],
  roles: [undefined, undefined, 'pro', 'admin', 'nobody'],
  ips: [undefined, undefined, undefined, '10.1.2.3', '192.0.2.7', '203.0.113.9'],
  maxCost: 8,
  maxPoints: 6,
  blockMs: fc.integer({ min: 1, max: 20_000 }),
  advanceMs: fc.oneof(
    fc.integer({ min: 0, max: 50 }),
    fc.integer({ min: 0, max: 3_000 }),
    fc.constantFrom(1, 999, 1_000, 1_001, 2_500, 5_000, 12_000),
  ),
  acquire: true,
  resetAll: true,
});

/** A start time that puts the first check anywhere in a window (windows are epoch-aligned). */
const startArb = fc.integer({ min: 1_750_000_000_000, max: 1_750_000_100_000 });

describe('the limiter on the memory store follows the README model', () => {
  it('over random call sequences, on a manual clock', async () => {
    await fc.assert(
      fc.asyncProperty(configArb, startArb, commands, async (config, start, sequence) => {
        const clock = new ManualClock(start);
        const limiter = createRateLimiter({ ...config, clock, store: new MemoryStore({ clock }) });
        const real: Real = {
          limiter,
          sync: true,
          acquireTimeoutMs: 1,
          log: [`config ${JSON.stringify(config)} start ${start}`],
          async timeOf(call) {
            const from = clock.now();
            const value = await call();
            return { value, from, to: from };
          },
          advance: (ms) => clock.advance(ms),
        };
        try {
          await fc.asyncModelRun(
            () => ({ model: { model: new LimiterModel(config) } satisfies ModelState, real }),
            sequence,
          );
        } finally {
          await limiter.close();
        }
      }),
      { numRuns: runs, seed, path },
    );
  });
});
