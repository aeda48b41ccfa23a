import { readFileSync } from 'node:fs';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxClockStepBackMs } from '../../src/algorithms/clock-step.js';
import { algorithms } from '../../src/algorithms/index.js';
import { autoBlockSchema, type BlockState, boundedBlock, recordViolation } from '../../src/auto-block.js';
import { type AlgorithmName, algorithmNames, capacityOf, type LimitPolicy } from '../../src/policy.js';
import { algorithmFiles, fifthPolicyValue } from '../../src/stores/lua-script.js';
import { RedisStore } from '../../src/stores/redis-store.js';
import { windowOffsetOf } from '../../src/window-offset.js';
import { policyArb } from '../policy-arbitrary.js';

// Each algorithm's Lua twin run on a real Redis with a time the test chooses (Redis's TIME cannot
// be moved), including times that go back, decision by decision against the TypeScript step. The
// harness keeps the state as the check script stores it: a window or bucket as its numbers, a
// sliding log as the entries a sorted-set read returns (inside the window, by time).

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const luaSource = algorithmFiles
  .map((file) => readFileSync(new URL(`../../src/lua/${file}`, import.meta.url), 'utf8'))
  .join('\n');
/**
 * ARGV: algorithm, limit, windowMs, burst, queueMaxDelayMs or a window's offset (as read_policy
 * reads them), then (now, cost) per step.
 */
const harness = `
local CALL_ARGV = ARGV
${luaSource}
local p = {
  alg = tonumber(CALL_ARGV[1]), limit = tonumber(CALL_ARGV[2]), window = tonumber(CALL_ARGV[3]),
  burst = tonumber(CALL_ARGV[4]), queue = tonumber(CALL_ARGV[5]), off = tonumber(CALL_ARGV[5]),
}
local a, b, c
local log = { times = {}, costs = {} }
local reply = {}
for i = 6, #CALL_ARGV, 2 do
  local t, cost = tonumber(CALL_ARGV[i]), tonumber(CALL_ARGV[i + 1])
  local allowed, remaining, reset, retry, delay, nxt, na, nb, nc
  if p.alg == 3 then
    -- What read_log returns at t: the entries inside the window, in time order.
    local order = {}
    for k = 1, #log.times do
      if log.times[k] > t - p.window then order[#order + 1] = { log.times[k], log.costs[k] } end
    end
    table.sort(order, function(x, y) return x[1] < y[1] end)
    local read = { times = {}, costs = {} }
    for k = 1, #order do read.times[k], read.costs[k] = order[k][1], order[k][2] end
    allowed, remaining, reset, retry, delay, nxt, na = ALG[3](read, t, cost, p)
    -- As check.lua: the log is written only when the step changed it (a cost-0 check does not).
    if allowed and na ~= read then log = na end
  else
    allowed, remaining, reset, retry, delay, nxt, na, nb, nc = ALG[p.alg](a, b, c, t, cost, p)
    if allowed then a, b, c = na, nb, nc end
  end
  reply[#reply + 1] = allowed and 1 or 0
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
  reply[#reply + 1] = delay
  reply[#reply + 1] = nxt
end
return reply
`;

/** Values the harness replies per step: allowed, remaining, resetMs, retryAfterMs, delayMs, nextMs. */
const perStep = 6;

/**
 * Requests whose clock may go back by up to two windows of the policies below, and sometimes
 * jumps hours either way (a clock far ahead, then back: past maxClockStepBackMs, the state starts
 * afresh), or lands within a few ms of that bound.
 */
const stepsArb = fc.array(
  fc.record({
    gap: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: -6_000, max: 3_000 }) },
      { weight: 1, arbitrary: fc.integer({ min: -3 * 3_600_000, max: 3 * 3_600_000 }) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.constantFrom(-1, 1), fc.integer({ min: -3_002, max: 3_002 }))
          .map(([sign, off]) => sign * (maxClockStepBackMs + off)),
      },
    ),
    cost: fc.integer({ min: 0, max: 4 }),
  }),
  { minLength: 1, maxLength: 60 },
);

/** A policy of `algorithm`; a leaky bucket sometimes queues, a window sometimes has an offset. */
const anyPolicyArb = (algorithm: AlgorithmName): fc.Arbitrary<LimitPolicy> =>
  algorithm === 'leaky-bucket'
    ? fc
        .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }))
        .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }))
    : algorithm === 'fixed-window' || algorithm === 'sliding-window'
      ? policyArb(algorithm).chain((policy) =>
          fc
            .option(fc.integer({ min: 1, max: Math.max(1, policy.windowMs - 1) }), { nil: undefined })
            .map(
              (offset): LimitPolicy =>
                offset === undefined || offset >= policy.windowMs
                  ? policy
                  : { ...policy, windowOffsetMs: offset },
            ),
        )
      : policyArb(algorithm);

describe.skipIf(skip !== undefined)('Lua algorithms decide as the TypeScript steps', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { lazyConnect: true });
    await client.connect();
  });
  afterAll(async () => {
    await client.quit();
  });

  for (const algorithm of algorithmNames) {
    // A window's offset: the Lua step counts at now − offset, as the stores run the TypeScript one.
    it(`${algorithm}: same decisions for the same times and costs, clock going back included (and window offsets)`, async () => {
      await fc.assert(
        fc.asyncProperty(
          anyPolicyArb(algorithm),
          fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
          stepsArb,
          async (policy, start, steps) => {
            const times: number[] = [];
            let now = start;
            for (const step of steps) {
              now += step.gap;
              times.push(now);
            }
            const argv = [
              algorithmNames.indexOf(algorithm) + 1,
              policy.limit,
              policy.windowMs,
              capacityOf(policy),
              fifthPolicyValue(policy, 'k'),
              ...steps.flatMap((step, index) => [times[index]!, step.cost]),
            ].map(String);
            const reply = (await client.eval(harness, 0, ...argv)) as number[];
            const offset = windowOffsetOf(policy, 'k');
            let state: unknown;
            steps.forEach((request, index) => {
              const { decision, state: next } = algorithms[algorithm].step(
                state,
                times[index]! - offset,
                request.cost,
                policy,
              );
              if (decision.allowed) state = next;
              const [allowed, remaining, resetMs, retry, delayMs, nextMs] = reply.slice(
                perStep * index,
                perStep * index + perStep,
              );
              expect({
                step: index,
                allowed: allowed === 1,
                remaining,
                resetMs,
                retryAfterMs: retry === -1 ? Number.POSITIVE_INFINITY : retry,
                delayMs,
                nextMs,
              }).toEqual({
                step: index,
                allowed: decision.allowed,
                remaining: decision.remaining,
                resetMs: decision.resetMs,
                retryAfterMs: decision.retryAfterMs,
                delayMs: decision.delayMs,
                nextMs: decision.nextMs,
              });
            });
          },
        ),
        { numRuns: 150 },
      );
    });
  }

  it('sliding-window: same decisions where limit × windowMs is past 2^53 (the whole quota of an unused key)', async () => {
    const policies: LimitPolicy[] = [
      { name: 'p', algorithm: 'sliding-window', limit: Number.MAX_SAFE_INTEGER, windowMs: 86_400_000 },
      { name: 'p', algorithm: 'sliding-window', limit: 123_456_789_012_345, windowMs: 1_000 },
      { name: 'p', algorithm: 'sliding-window', limit: 5, windowMs: 2_007_522_948_002_793 },
    ];
    const start = 1_700_000_000_123;
    for (const policy of policies) {
      const steps = [
        [start, 0],
        [start, 1],
        [start + 1, 2],
        [start + policy.windowMs, 0],
        [start + policy.windowMs + 7, 1],
      ] as const;
      const argv = [
        algorithmNames.indexOf(policy.algorithm) + 1,
        policy.limit,
        policy.windowMs,
        capacityOf(policy),
        0,
        ...steps.flat(),
      ].map(String);
      const reply = (await client.eval(harness, 0, ...argv)) as number[];
      let state: unknown;
      steps.forEach(([time, cost], index) => {
        const { decision, state: next } = algorithms[policy.algorithm].step(state, time, cost, policy);
        if (decision.allowed) state = next;
        const [allowed, remaining, resetMs, , , nextMs] = reply.slice(
          perStep * index,
          perStep * index + perStep,
        );
        expect({ index, allowed: allowed === 1, remaining, resetMs, nextMs }).toEqual({
          index,
          allowed: decision.allowed,
          remaining: decision.remaining,
          resetMs: decision.resetMs,
          nextMs: decision.nextMs,
        });
      });
      // An unused key has its whole quota in both.
      expect(reply[1]).toBe(policy.limit);
    }
  });

  it('sliding-window: the same retry time past 2^53, where the rounded quotient would make it 1 ms early', async () => {
    // sliding-window-retry-bound.test.ts's counterexample: a full window, then a refused point.
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'sliding-window',
      limit: 5_821_975_669_930_150,
      windowMs: 16_858,
    };
    const windowStart = 1_700_000_000_123 - (1_700_000_000_123 % policy.windowMs);
    const first = [
      [windowStart, policy.limit],
      [windowStart, 1],
    ] as const;
    const argv = (steps: readonly (readonly [number, number])[]) =>
      [
        algorithmNames.indexOf(policy.algorithm) + 1,
        policy.limit,
        policy.windowMs,
        capacityOf(policy),
        0,
        ...steps.flat(),
      ].map(String);
    const reply = (await client.eval(harness, 0, ...argv(first))) as number[];
    const full = algorithms['sliding-window'].step(undefined, windowStart, policy.limit, policy);
    const refused = algorithms['sliding-window'].step(full.state, windowStart, 1, policy).decision;
    expect(refused.allowed).toBe(false);
    expect(reply.slice(perStep, perStep + 6)).toEqual([
      0,
      refused.remaining,
      refused.resetMs,
      refused.retryAfterMs,
      refused.delayMs,
      refused.nextMs,
    ]);
    // The retry time admits the point, in the script as in TypeScript.
    const retried = (await client.eval(
      harness,
      0,
      ...argv([...first, [windowStart + refused.retryAfterMs, 1]]),
    )) as number[];
    expect(retried[perStep * 2]).toBe(1);
  });

  /** Runs `steps` ([time, cost]) through the harness and the TypeScript step: both decisions. */
  async function both(policy: LimitPolicy, steps: readonly (readonly [number, number])[]) {
    const argv = [
      algorithmNames.indexOf(policy.algorithm) + 1,
      policy.limit,
      policy.windowMs,
      capacityOf(policy),
      policy.queueMaxDelayMs ?? 0,
      ...steps.flat(),
    ].map(String);
    const reply = (await client.eval(harness, 0, ...argv)) as number[];
    const lua = steps.map((_, index) => ({
      allowed: reply[perStep * index] === 1,
      delayMs: reply[perStep * index + 4],
    }));
    let state: unknown;
    const ts = steps.map(([time, cost]) => {
      const { decision, state: next } = algorithms[policy.algorithm].step(state, time, cost, policy);
      if (decision.allowed) state = next;
      return { allowed: decision.allowed, delayMs: decision.delayMs };
    });
    return { lua, ts };
  }

  it('sliding log: a cost-0 check ahead of the newest entry keeps the entries a clock gone back still counts', async () => {
    // Logged at 0 and 500 (limit 2 per 1 s); a free check at 1,600 must not drop them: back at
    // 1,100 the entry at 500 is still in the window, so one more fits and a second does not.
    const t = 1_700_000_000_000;
    const policy: LimitPolicy = { name: 'p', algorithm: 'sliding-log', limit: 2, windowMs: 1_000 };
    const { lua, ts } = await both(policy, [
      [t, 1],
      [t + 500, 1],
      [t + 1_600, 0],
      [t + 1_100, 1],
      [t + 1_150, 1],
    ]);
    const expected = [true, true, true, true, false];
    expect(lua.map((decision) => decision.allowed)).toEqual(expected);
    expect(ts.map((decision) => decision.allowed)).toEqual(expected);
  });

  it('sliding log: the check script keeps a log a cost-0 check finds outside its window', async () => {
    // Redis's TIME cannot be moved: the entries are moved instead, back past the window (as if
    // the clock had jumped ahead), then forward 5 s after the free check (as if it had gone back;
    // 1 s put them inside by only 0.5 s, which a loaded machine spent before the next check).
    const prefix = `${uniqueName('rl-log0')}:`;
    const store = new RedisStore({ client, prefix });
    const limits: LimitPolicy[] = [{ name: 'p', algorithm: 'sliding-log', limit: 2, windowMs: 10_000 }];
    const move = async (ms: number) => {
      let moved = 0;
      for (const key of await client.keys(`${prefix}*`)) {
        if ((await client.type(key)) !== 'zset') continue;
        const members = await client.zrange(key, 0, -1);
        await client.del(key);
        for (const member of members) {
          const [time, cost, index] = member.split(':');
          const at = Number(time) + ms;
          await client.zadd(key, at, `${at}:${cost}:${index}`);
          moved += 1;
        }
        await client.pexpire(key, 60_000);
      }
      return moved;
    };
    try {
      const filled = await store.consume('k', limits, [1, 1], undefined);
      expect(filled.map((outcome) => outcome.decisions[0]!.allowed)).toEqual([true, true]);
      expect(await move(-10_500)).toBe(2);
      const free = await store.consume('k', limits, [0], undefined);
      expect(free[0]!.decisions[0]!).toMatchObject({ allowed: true, remaining: 2 });
      expect(await move(5_000)).toBe(2);
      // Both entries are inside the window again: nothing more fits (it admitted two more).
      const after = await store.consume('k', limits, [1, 1], undefined);
      expect(after.map((outcome) => outcome.decisions[0]!.allowed)).toEqual([false, false]);
    } finally {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
    }
  });

  it('queueing leaky bucket: a clock gone back 10 s queues a request for the leak, not the leak plus 10 s', async () => {
    // The bucket was filled by a clock 10 s ahead. Its queued requests are released after their
    // delays in real time, from checks made before this one: a release one leak after now keeps
    // the rate, so the lead is not added (it held the request 11 s, or refused it for 10 s).
    const t = 1_700_000_000_000;
    const policy: LimitPolicy = {
      name: 'p',
      algorithm: 'leaky-bucket',
      limit: 1,
      windowMs: 1_000,
      burst: 1,
      queueMaxDelayMs: 1_000,
    };
    const { lua, ts } = await both(policy, [
      [t + 10_000, 1],
      [t, 1],
      [t + 1, 1],
    ]);
    const expected = [
      { allowed: true, delayMs: 0 },
      { allowed: true, delayMs: 1_000 },
      // The queue (1 s) is full until the bucket leaks, from its own time on.
      { allowed: false, delayMs: 0 },
    ];
    expect(lua).toEqual(expected);
    expect(ts).toEqual(expected);
  });

  it('auto-block: record_violation counts and blocks as recordViolation, and bounded_block bounds a block as boundedBlock, clock going back included', async () => {
    // ARGV: violations, withinMs, blockMs, multiplier, maxBlockMs, forgetAfterMs, then the times
    // of refusals (a blocked key records none); per refusal the state as check.lua stores it.
    const violationHarness = `
local CALL_ARGV = ARGV
${luaSource}
local within = tonumber(CALL_ARGV[2])
local bp = {
  violations = tonumber(CALL_ARGV[1]), slot = math.ceil(within / VIOLATION_SLOTS), ms = tonumber(CALL_ARGV[3]),
  mult = tonumber(CALL_ARGV[4]), max = tonumber(CALL_ARGV[5]), forget = tonumber(CALL_ARGV[6]),
}
local block = { v = 0, w = 0, u = 0, o = 0, p = '', s = 0 }
local reply = {}
for i = 7, #CALL_ARGV do
  local t = tonumber(CALL_ARGV[i])
  if block.u > t then
    local nu, ns = bounded_block(block.u, block.s, t)
    if nu ~= nil then block.u, block.s = nu, ns end
  end
  if block.u <= t then record_violation(block, t, bp) end
  reply[#reply + 1] = { block.v, block.w, block.u, block.o, block.p, block.s }
end
return reply
`;
    const optionsArb = fc.record({
      violations: fc.integer({ min: 1, max: 8 }),
      withinMs: fc.integer({ min: 1, max: 20_000 }),
      blockMs: fc.integer({ min: 1, max: 5_000 }),
      multiplier: fc.integer({ min: 1, max: 3 }),
      maxBlockMs: fc.integer({ min: 5_000, max: 50_000 }),
      forgetAfterMs: fc.integer({ min: 1, max: 60_000 }),
    });
    await fc.assert(
      fc.asyncProperty(
        optionsArb,
        fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }),
        stepsArb,
        async (options, start, steps) => {
          const policy = autoBlockSchema.parse(options);
          const times: number[] = [];
          let now = start;
          for (const step of steps) {
            now += step.gap;
            times.push(now);
          }
          const argv = [
            policy.violations,
            policy.withinMs,
            policy.blockMs,
            policy.multiplier,
            policy.maxBlockMs,
            policy.forgetAfterMs,
            ...times,
          ].map(String);
          const reply = (await client.eval(violationHarness, 0, ...argv)) as [
            number,
            number,
            number,
            number,
            string,
            number,
          ][];
          let state: BlockState | undefined;
          times.forEach((time, index) => {
            // A block the clock went back behind the start of lasts its own length (boundedBlock).
            if (state !== undefined && state.blockedUntil > time) state = boundedBlock(state, time);
            if ((state?.blockedUntil ?? 0) <= time) state = recordViolation(state, time, policy);
            const [violations, windowStart, blockedUntil, offences, earlier, blockedAt] = reply[index]!;
            expect({
              step: index,
              violations,
              windowStart,
              blockedUntil,
              offences,
              earlier,
              blockedAt,
            }).toEqual({
              step: index,
              violations: state?.violations ?? 0,
              windowStart: state?.windowStart ?? 0,
              blockedUntil: state?.blockedUntil ?? 0,
              offences: state?.offences ?? 0,
              earlier: state?.earlier.join(',') ?? '',
              blockedAt: state?.blockedAt ?? 0,
            });
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it("stores a sliding log until its newest entry leaves the window, when that entry is ahead of Redis's clock", async () => {
    // After a failover to a server whose clock is behind, the log's newest entry (logged at the
    // newest time, logAtLatest) is ahead of `now`: the set must outlive `now + window`.
    const script = `
local CALL_KEYS, CALL_ARGV = KEYS, ARGV
${luaSource}
now = tonumber(CALL_ARGV[1])
local window = tonumber(CALL_ARGV[2])
write_log(CALL_KEYS[1], { times = { now - 1000, now + 5000 }, costs = { 1, 2 } }, window)
return redis.call('PTTL', CALL_KEYS[1])
`;
    const key = `${uniqueName('rl-log')}:log`;
    const ttl = (await client.eval(script, 1, key, String(1_700_000_000_000), '10000')) as number;
    await client.del(key);
    expect(ttl).toBeGreaterThan(14_000);
    expect(ttl).toBeLessThanOrEqual(15_000);
  });
});
