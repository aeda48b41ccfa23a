import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, type StoreAdjustment } from '../../src/index.js';
import { algorithmNames, type LimitPolicy } from '../../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import type { ConsumeOutcome, RateLimitStore } from '../../src/stores/store.js';

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')} (adjust.lua parity)`);

/** One step of a random history: a check of some points, or an adjustment. */
type Operation = { kind: 'check'; points: number } | StoreAdjustment;

const operationArb: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('check' as const), points: fc.integer({ min: 0, max: 4 }) }),
  fc.constant({ operation: 'peek' as const }),
  fc.record({ operation: fc.constant('refund' as const), points: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ operation: fc.constant('penalize' as const), points: fc.integer({ min: 0, max: 5 }) }),
  // Manual blocks, honoured by checks without auto-block on both script paths (one limit: the
  // one-key path; two: the batch path). Long enough to outlast the run on both clocks.
  fc.record({
    operation: fc.constant('block' as const),
    durationMs: fc.integer({ min: 60_000, max: 600_000 }),
  }),
  fc.constant({ operation: 'unblock' as const }),
);

// Day-long windows: the milliseconds a run takes refill or leak far less than one point, so the
// two stores' clocks (Redis TIME, the process's) give the same integer answers.
const policyArb = fc
  .record({
    algorithm: fc.constantFrom(...algorithmNames),
    limit: fc.integer({ min: 1, max: 8 }),
    burst: fc.option(fc.integer({ min: 1, max: 10 }), { nil: undefined }),
  })
  .map(
    ({ algorithm, limit, burst }): LimitPolicy => ({
      name: 'p',
      algorithm,
      limit,
      windowMs: 86_400_000,
      burst: algorithm === 'token-bucket' || algorithm === 'leaky-bucket' ? burst : undefined,
    }),
  );

const summary = (outcome: ConsumeOutcome) => [
  outcome.blockedMs > 0,
  ...outcome.decisions.map((decision) => [decision.allowed, decision.remaining]),
];

describe.skipIf(!redisUp)('adjust.lua and check.lua decide as the TypeScript adjusters and store do', () => {
  let client: Redis;
  let redis: RateLimitStore;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    redis = new RedisStore({ client, prefix: `${uniqueName('rlparity')}:` });
  });
  afterAll(async () => {
    await client.quit();
  });

  it('the same random histories of checks, peeks, refunds, penalties, blocks and unblocks give the same answers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(policyArb, { minLength: 1, maxLength: 2 }),
        fc.array(operationArb, { minLength: 1, maxLength: 25 }),
        async (limits, operations) => {
          const memory = new MemoryStore();
          const key = uniqueName('k');
          for (const operation of operations) {
            const [expected, actual] =
              'kind' in operation
                ? [
                    memory.consume(key, limits, [operation.points], undefined)[0]!,
                    (await redis.consume(key, limits, [operation.points], undefined))[0]!,
                  ]
                : [
                    memory.adjust(key, limits, operation, undefined),
                    await Promise.resolve(redis.adjust!(key, limits, operation, undefined)),
                  ];
            expect(summary(actual)).toEqual(summary(expected));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
