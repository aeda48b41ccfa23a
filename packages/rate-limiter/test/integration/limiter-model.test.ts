import { ManualClock } from '@noa/core';
import { generousDeadlineMs, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createRateLimiter, type LimitInput, MemoryStore } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { LimiterModel, type ModelConfig } from '../limiter-model.js';
import { commandsOf, limitArb, type ModelState, type Real } from '../limiter-model-run.js';

// Model-based test of the public API on the real Redis store: random call sequences (check,
// consume, peek, refund, penalize, block, unblock, reset, resetAll, acquire; several limits, roles,
// lists, auto-block), each answer compared with the reference model of limiter-model.ts, and with a
// memory-store limiter run on the same calls with its clock set to Redis's time (the two stores
// must agree). Redis times its checks by its own TIME, which a test cannot move: the windows,
// blocks and auto-block spans are long (windows of 2·10^12 ms and more, whose epoch-aligned window
// is [0, windowMs): no boundary near now; blocks of hours), so what a call decides is certain, and
// each time a result reports is compared within what the test knows of Redis's millisecond: TIME
// read before and after the call, plus the widest such gap before it (a state stamped by an
// earlier call), plus 2 ms for answers of the local block cache, timed by this process's clock. NOA_MODEL_SEED (and NOA_MODEL_PATH) rerun a failure (fast-check prints the seed and path of a failure).

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

const seed = process.env.NOA_MODEL_SEED === undefined ? undefined : Number(process.env.NOA_MODEL_SEED);
const path = process.env.NOA_MODEL_PATH;
const runs = Number(process.env.NOA_MODEL_RUNS ?? 50);

const hourMs = 3_600_000;
const windowArb = fc.integer({ min: 2_000_000_000_000, max: 10_000_000_000_000 });

const limitsArb = fc
  .uniqueArray(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 3 })
  .chain((names) => fc.tuple(...names.map((name) => limitArb(name, windowArb))))
  // No queueing: a delayed admission would make acquire() wait it out in real time.
  .map((limits) => limits.map(({ queueMaxDelayMs: _queue, ...limit }) => limit));

const configArb: fc.Arbitrary<ModelConfig> = fc
  .record(
    {
      limits: limitsArb as fc.Arbitrary<LimitInput[]>,
      roles: fc.record({
        pro: fc
          .tuple(limitArb('p', windowArb))
          .map((limits) => limits.map(({ queueMaxDelayMs: _q, ...limit }) => limit)) as fc.Arbitrary<
          LimitInput[]
        >,
        admin: fc.constant('unlimited' as const),
      }),
      autoBlock: fc.option(
        fc.record({
          violations: fc.integer({ min: 1, max: 4 }),
          withinMs: fc.integer({ min: 1_000 * hourMs, max: 2_000 * hourMs }),
          blockMs: fc.integer({ min: hourMs, max: 10 * hourMs }),
          multiplier: fc.constantFrom(1, 1.5, 2, 3),
          maxBlockMs: fc.constant(100 * hourMs),
          forgetAfterMs: fc.integer({ min: hourMs, max: 100 * hourMs }),
        }),
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
  blockMs: fc.integer({ min: hourMs, max: 50 * hourMs }),
  acquire: true,
  resetAll: false,
});

describe.skipIf(!redisUp)(
  'the limiter on Redis follows the README model and agrees with the memory store',
  () => {
    const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    const prefix = `${uniqueName('rlmodel')}:`;
    beforeAll(async () => {
      await client.connect();
    });
    afterAll(async () => {
      // The windows are long: leave no key behind.
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await client.unlink(...keys);
        cursor = next;
      } while (cursor !== '0');
      await client.quit();
    });

    const redisTime = async () => {
      const [secondsText, microsText] = await client.time();
      return Number(secondsText) * 1_000 + Math.floor(Number(microsText) / 1_000);
    };

    it('over random call sequences', async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(configArb, commands, async (config, sequence) => {
          run += 1;
          // A prefix per run: the limiters of a run share nothing with the last run's.
          const store = new RedisStore({ client, prefix: `${prefix}${run}:` });
          const limiter = createRateLimiter({
            ...config,
            store,
            failMode: 'closed',
            deadlineMs: generousDeadlineMs,
          });
          const clock = new ManualClock(await redisTime());
          const twin = createRateLimiter({ ...config, clock, store: new MemoryStore({ clock }) });
          let widestMs = 0;
          const real: Real = {
            limiter,
            sync: false,
            acquireTimeoutMs: 60_000,
            log: [`config ${JSON.stringify(config)}`],
            async timeOf(call) {
              const from = await redisTime();
              const value = await call();
              const to = await redisTime();
              // Plus 2 ms: a refusal the local block cache answers is shifted by the time elapsed on
              // this process's clock since Redis gave it (README, "Hot keys"), each clock rounded to
              // its millisecond.
              const slack = to - from + widestMs + 2;
              widestMs = Math.max(widestMs, to - from);
              return { value, from, to: from + slack };
            },
            twin: { limiter: twin, setTime: (ms) => clock.set(ms) },
          };
          try {
            await fc.asyncModelRun(
              () => ({ model: { model: new LimiterModel(config) } satisfies ModelState, real }),
              sequence,
            );
          } finally {
            await Promise.all([limiter.close(), twin.close()]);
          }
        }),
        { numRuns: runs, seed, path },
      );
    });
  },
);
