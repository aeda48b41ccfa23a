import { awayFromWindowEdge, startPrivateRedisOrSkip } from '@noa/testkit';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { beforeEach, describe, expect, it } from 'vitest';
import { algorithms } from '../../src/algorithms/index.js';
import { type AlgorithmName, capacityOf, type LimitPolicy } from '../../src/policy.js';
import { RedisStore } from '../../src/stores/redis-store.js';
import { policyArb } from '../policy-arbitrary.js';
import { privateRedisConnections } from './redis-fixture.js';

// The check script has two paths: check_single (one cost over one scalar limit, no auto-block:
// the commonest call) and check_group (everything else). The conformance suite runs both, but
// through different scenarios; here the same requests go through both in one script call, so
// at one Redis `now`, and must decide and store alike.

const { redis, skip } = await startPrivateRedisOrSkip();
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 3 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 3_000);
});

const scalarAlgorithms: AlgorithmName[] = ['fixed-window', 'sliding-window', 'token-bucket', 'leaky-bucket'];

/** A scalar policy; a leaky bucket sometimes queues (policyArb never does). */
const scalarPolicyArb = (algorithm: AlgorithmName) =>
  algorithm === 'leaky-bucket'
    ? fc
        .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }))
        .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }))
    : policyArb(algorithm);

/** What earlier requests may have left, relative to Redis's clock when the case runs. */
const seedArb = fc.option(
  fc.record({
    windowsBack: fc.integer({ min: 0, max: 3 }),
    count: fc.integer({ min: 0, max: 14 }),
    previous: fc.integer({ min: 0, max: 14 }),
    fill: fc.double({ min: 0, max: 1, noNaN: true }),
    updatedAgoMs: fc.integer({ min: -1_000, max: 4_000 }),
  }),
  { nil: undefined },
);
type Seed = NonNullable<typeof seedArb extends fc.Arbitrary<infer T> ? T : never>;

/** A request's cost: mostly within the policies' capacities, often far above them (never admitted). */
const costArb = fc.oneof(fc.integer({ min: 0, max: 14 }), fc.integer({ min: 15, max: 80 }));

/** The hash fields (as the script stores them) of a seeded state. */
function seedFields(policy: LimitPolicy, seed: Seed, now: number): Record<string, number> {
  const w = policy.windowMs;
  const windowStart = now - (now % w) - seed.windowsBack * w;
  switch (policy.algorithm) {
    case 'fixed-window':
      return { '1:a': windowStart, '1:b': seed.count };
    case 'sliding-window':
      return { '1:a': windowStart, '1:b': seed.count, '1:c': seed.previous };
    case 'token-bucket':
      return { '1:a': Math.floor(seed.fill * capacityOf(policy) * w), '1:b': now - seed.updatedAgoMs };
    default: {
      const most = capacityOf(policy) * w + (policy.queueMaxDelayMs ?? 0) * policy.limit;
      return { '1:a': Math.floor(seed.fill * most), '1:b': now - seed.updatedAgoMs };
    }
  }
}

/** The TypeScript state of a key's stored hash (the fields as the script writes them). */
function stateOfFields(policy: LimitPolicy, fields: Record<string, string>): unknown {
  if (fields['1:a'] === undefined) return undefined;
  const a = Number(fields['1:a']);
  const b = Number(fields['1:b']);
  switch (policy.algorithm) {
    case 'fixed-window':
      return { windowStart: a, count: b };
    case 'sliding-window':
      return { windowStart: a, current: b, previous: Number(fields['1:c'] ?? 0) };
    case 'token-bucket':
      return { tokens: a, updatedAt: b };
    default:
      return { level: a, updatedAt: b };
  }
}

/** An HGETALL reply inside MULTI (ioredis transforms it only outside a transaction). */
function pairsToRecord(reply: string[] | Record<string, string>): Record<string, string> {
  if (!Array.isArray(reply)) return reply;
  const record: Record<string, string> = {};
  for (let index = 0; index + 1 < reply.length; index += 2) record[reply[index]!] = reply[index + 1]!;
  return record;
}

async function redisNow(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

describe.skipIf(skip !== undefined)('RedisStore script paths', () => {
  const { client } = privateRedisConnections(redis);
  const prefix = 'paths:';
  const store = new RedisStore({ client, prefix });
  let run = 0;

  for (const algorithm of scalarAlgorithms) {
    it(`${algorithm}: a batch of costs (check_group) and the same costs one by one (check_single) agree`, async () => {
      const caseArb = fc.record({
        policy: scalarPolicyArb(algorithm),
        seed: seedArb,
        costs: fc.array(costArb, { minLength: 2, maxLength: 8 }),
      });
      await fc.assert(
        fc.asyncProperty(caseArb, async ({ policy, seed, costs }) => {
          run += 1;
          const batched = `batched-${run}`;
          const single = `single-${run}`;
          const hashes = [`${prefix}{${batched}}`, `${prefix}{${single}}`];
          if (seed !== undefined) {
            const fields = seedFields(policy, seed, await redisNow(client));
            const expiresAt = Date.now() + 600_000;
            for (const hash of hashes) {
              await client.hset(hash, fields);
              await client.pexpireat(hash, expiresAt);
            }
          }
          const limits = [policy];
          // Up to nine groups: one script call, so one `now` for both keys. Groups of one key
          // run in order, each reading what the one before it stored.
          const before = await redisNow(client);
          const outcomes = await store.consumeMany(
            [
              { key: batched, limits, costs },
              ...costs.map((cost) => ({ key: single, limits, costs: [cost] })),
            ],
            undefined,
          );
          expect(outcomes.slice(1).map((one) => one[0])).toEqual(outcomes[0]);
          // States and expiries read in one transaction (Redis freezes its clock for expiry during
          // EXEC): read apart, a state kept 1 ms could be there for HGETALL and gone for PEXPIRETIME.
          const replies = await client
            .multi([
              ['hgetall', hashes[0]!],
              ['hgetall', hashes[1]!],
              ['pexpiretime', hashes[0]!],
              ['pexpiretime', hashes[1]!],
            ])
            .exec();
          const after = await redisNow(client);
          const [batchedState, singleState] = [0, 1].map((index) =>
            pairsToRecord(replies![index]![1] as string[] | Record<string, string>),
          );
          // PEXPIRE counts from the clock when it runs, which may tick during the script: the
          // two expiries (the same TTL set at two moments of the call) may differ by that much.
          const [batchedExpiry, singleExpiry] = [2, 3].map((index) => Number(replies![index]![1]));
          // A state kept 1 ms may expire between the script and the reads: one hash can be gone
          // while the other, expiring up to that tick later, is still there.
          const gone = [batchedState, singleState].filter((state) => Object.keys(state ?? {}).length === 0);
          if (gone.length === 1) {
            expect(Math.max(batchedExpiry!, singleExpiry!) - before).toBeLessThanOrEqual(after - before + 1);
            return;
          }
          expect(singleState).toEqual(batchedState);
          expect(Math.sign(singleExpiry!)).toBe(Math.sign(batchedExpiry!));
          expect(Math.abs(singleExpiry! - batchedExpiry!)).toBeLessThanOrEqual(after - before);
        }),
        { numRuns: 60 },
      );
    });
  }

  for (const algorithm of scalarAlgorithms) {
    it(`${algorithm}: a call of one key (the script's first path) decides and stores as the TypeScript step`, async () => {
      const caseArb = fc.record({
        policy: scalarPolicyArb(algorithm),
        seed: seedArb,
        cost: costArb,
      });
      await fc.assert(
        fc.asyncProperty(caseArb, async ({ policy, seed, cost }) => {
          run += 1;
          const key = `one-${run}`;
          const hash = `${prefix}{${key}}`;
          if (seed !== undefined) {
            await client.hset(hash, seedFields(policy, seed, await redisNow(client)));
            await client.pexpireat(hash, Date.now() + 600_000);
          }
          const stored = stateOfFields(policy, await client.hgetall(hash));
          const before = await redisNow(client);
          const [outcome] = await store.consume(key, [policy], [cost], undefined);
          const after = await redisNow(client);
          const decision = outcome!.decisions[0]!;
          const state = stateOfFields(policy, await client.hgetall(hash));
          const readAt = await redisNow(client);
          // The script read Redis's clock once, at some ms in [before, after]: one of them must
          // give the TypeScript step's decision and (when admitted) its state.
          const candidates = [];
          for (let now = before; now <= after; now += 1) {
            const step = algorithms[policy.algorithm].step(
              stored === undefined ? undefined : structuredClone(stored),
              now,
              cost,
              policy,
            );
            candidates.push({
              decision: {
                allowed: step.decision.allowed,
                remaining: step.decision.remaining,
                resetMs: step.decision.resetMs,
                retryAfterMs: step.decision.retryAfterMs,
                delayMs: step.decision.delayMs,
              },
              state: step.decision.allowed ? step.state : stored,
            });
            // A state kept for less than the time until it was read back may already be gone
            // (a full bucket is kept 1 ms).
            const keptMs = step.decision.allowed
              ? Math.max(1, algorithms[policy.algorithm].ttlMs(step.state, now, policy))
              : Number.POSITIVE_INFINITY;
            if (keptMs <= readAt - now + 1)
              candidates.push({ decision: candidates.at(-1)!.decision, state: undefined });
          }
          expect(candidates).toContainEqual({
            decision: {
              allowed: decision.allowed,
              remaining: decision.remaining,
              resetMs: decision.resetMs,
              retryAfterMs: decision.retryAfterMs,
              delayMs: decision.delayMs,
            },
            state,
          });
        }),
        { numRuns: 80 },
      );
    });
  }

  it('many keys with one cost each (their count left out), sliding logs among them, in one call', async () => {
    const mixed: LimitPolicy[] = [
      { name: 'log', algorithm: 'sliding-log', limit: 2, windowMs: 60_000 },
      { name: 'bucket', algorithm: 'token-bucket', limit: 3, windowMs: 60_000 },
    ];
    const single: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 1, windowMs: 60_000 }];
    const requests = Array.from({ length: 30 }, (_, index) => ({
      key: `many-${index}`,
      limits: index % 3 === 0 ? mixed : single,
      costs: [1],
    }));
    const rounds: boolean[][] = [];
    for (let round = 0; round < 3; round += 1) {
      const outcomes = await store.consumeMany(requests, undefined);
      rounds.push(outcomes.map(([outcome]) => outcome!.decisions.every((decision) => decision.allowed)));
    }
    requests.forEach((_, index) => {
      expect(rounds.map((allowed) => allowed[index])).toEqual(
        index % 3 === 0 ? [true, true, false] : [true, false, false],
      );
    });
    // Each key's log landed in its own sorted set: the key offsets skipped the other keys' logs.
    expect(await client.zcard(`${prefix}{many-0}:log1`)).toBe(2);
    expect(await client.zcard(`${prefix}{many-3}:log1`)).toBe(2);
    expect(await client.exists(`${prefix}{many-1}:log1`)).toBe(0);
  });

  it('a call with no limits decides nothing and needs no path', async () => {
    const outcomes = await store.consumeMany(
      [
        { key: 'none', limits: [], costs: [1] },
        {
          key: 'one',
          limits: [{ name: 'f', algorithm: 'fixed-window', limit: 1, windowMs: 60_000 }],
          costs: [1],
        },
      ],
      undefined,
    );
    expect(outcomes.map((one) => one.map((outcome) => outcome.decisions.map((d) => d.allowed)))).toEqual([
      [[]],
      [[true]],
    ]);
  });

  it('a check that changes nothing writes nothing: a free check in the current window', async () => {
    const admin = new Redis(redis!.url);
    const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 5, windowMs: 3_600_000 }];
    await store.consume('quiet', limits, [1], undefined);
    await admin.config('RESETSTAT');
    const [outcome] = await store.consume('quiet', limits, [0], undefined);
    expect(outcome!.decisions[0]!.remaining).toBe(4);
    const stats = await admin.info('commandstats');
    expect(stats).toMatch(/cmdstat_hmget:calls=1,/);
    expect(stats).not.toMatch(/cmdstat_hset:/);
    expect(stats).not.toMatch(/cmdstat_pexpire:/);
    admin.disconnect();
  });
});
