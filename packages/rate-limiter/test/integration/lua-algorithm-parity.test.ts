import { readFileSync } from 'node:fs';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxClockStepBackMs } from '../../src/algorithms/clock-step.js';
import { algorithms } from '../../src/algorithms/index.js';
import { type AlgorithmName, algorithmNames, capacityOf, type LimitPolicy } from '../../src/policy.js';
import { algorithmFiles } from '../../src/stores/lua-script.js';
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
/** ARGV: algorithm, limit, windowMs, burst, queueMaxDelayMs, then (now, cost) per step. */
const harness = `
local CALL_ARGV = ARGV
${luaSource}
local p = {
  alg = tonumber(CALL_ARGV[1]), limit = tonumber(CALL_ARGV[2]), window = tonumber(CALL_ARGV[3]),
  burst = tonumber(CALL_ARGV[4]), queue = tonumber(CALL_ARGV[5]),
}
local a, b, c
local log = { times = {}, costs = {} }
local reply = {}
for i = 6, #CALL_ARGV, 2 do
  local t, cost = tonumber(CALL_ARGV[i]), tonumber(CALL_ARGV[i + 1])
  local allowed, remaining, reset, retry, delay, na, nb, nc
  if p.alg == 3 then
    -- What read_log returns at t: the entries inside the window, in time order.
    local order = {}
    for k = 1, #log.times do
      if log.times[k] > t - p.window then order[#order + 1] = { log.times[k], log.costs[k] } end
    end
    table.sort(order, function(x, y) return x[1] < y[1] end)
    local read = { times = {}, costs = {} }
    for k = 1, #order do read.times[k], read.costs[k] = order[k][1], order[k][2] end
    allowed, remaining, reset, retry, delay, na = ALG[3](read, t, cost, p)
    if allowed then log = na end
  else
    allowed, remaining, reset, retry, delay, na, nb, nc = ALG[p.alg](a, b, c, t, cost, p)
    if allowed then a, b, c = na, nb, nc end
  end
  reply[#reply + 1] = allowed and 1 or 0
  reply[#reply + 1] = remaining
  reply[#reply + 1] = reset
  reply[#reply + 1] = retry
  reply[#reply + 1] = delay
end
return reply
`;

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

/** A policy of `algorithm`; a leaky bucket sometimes queues. */
const anyPolicyArb = (algorithm: AlgorithmName) =>
  algorithm === 'leaky-bucket'
    ? fc
        .tuple(policyArb(algorithm), fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }))
        .map(([policy, queueMaxDelayMs]): LimitPolicy => ({ ...policy, queueMaxDelayMs }))
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
    it(`${algorithm}: same decisions for the same times and costs, clock going back included`, async () => {
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
              policy.queueMaxDelayMs ?? 0,
              ...steps.flatMap((step, index) => [times[index]!, step.cost]),
            ].map(String);
            const reply = (await client.eval(harness, 0, ...argv)) as number[];
            let state: unknown;
            steps.forEach((request, index) => {
              const { decision, state: next } = algorithms[algorithm].step(
                state,
                times[index]!,
                request.cost,
                policy,
              );
              if (decision.allowed) state = next;
              const [allowed, remaining, resetMs, retry, delayMs] = reply.slice(5 * index, 5 * index + 5);
              expect({
                step: index,
                allowed: allowed === 1,
                remaining,
                resetMs,
                retryAfterMs: retry === -1 ? Number.POSITIVE_INFINITY : retry,
                delayMs,
              }).toEqual({
                step: index,
                allowed: decision.allowed,
                remaining: decision.remaining,
                resetMs: decision.resetMs,
                retryAfterMs: decision.retryAfterMs,
                delayMs: decision.delayMs,
              });
            });
          },
        ),
        { numRuns: 150 },
      );
    });
  }

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
