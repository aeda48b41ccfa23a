import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startReplicatedRedisClusterOrSkip } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AlgorithmName, createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';

// A steady stream of checks on a 3 masters + 3 replicas Cluster while one master is failed over
// by hand (CLUSTER FAILOVER on its replica) and another is killed (its replica takes over after
// the node timeout). A check in flight on a master that goes away may have been counted there
// (and replicated) without its reply arriving; ioredis may then send it again to the new
// master. Whatever happens, no key may admit more than its limit: the fail mode is `closed`, so
// every admission is one the store counted.

const run = promisify(execFile);
// Reached after about as many rounds as the failovers take: counts straddle them.
const limit = 35;
// Windows of ~35 years: nothing refills or rolls over mid-test.
const windowMs = 2 ** 40;
const keys = Array.from({ length: 24 }, (_, index) => `user-${index}`);

const { cluster, skip } = await startReplicatedRedisClusterOrSkip(3, 1);

/** `deadlineMs` 25 (the default): a resend lands after its expiry; 1,000: it lands in time. */
const setups: { algorithm: AlgorithmName; deadlineMs: number }[] = [
  { algorithm: 'fixed-window', deadlineMs: 25 },
  { algorithm: 'token-bucket', deadlineMs: 1_000 },
  { algorithm: 'sliding-log', deadlineMs: 1_000 },
];

describe.skipIf(skip !== undefined)('checks during a Redis Cluster failover', () => {
  let client: Cluster;
  const limiters: RateLimiter[] = [];

  beforeAll(() => {
    client = new Cluster(cluster!.nodes, { ...recommendedClusterOptions });
    client.on('error', () => {});
    for (const { algorithm, deadlineMs } of setups)
      limiters.push(
        createRateLimiter({
          store: new RedisStore({ client, prefix: `failover-${algorithm}:` }),
          limits: [{ algorithm, limit, windowMs }],
          failMode: 'closed',
          deadlineMs,
          // Every check goes to Redis: an open breaker would only refuse more.
          breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
          localBlockCache: false,
        }),
      );
  });

  afterAll(async () => {
    for (const limiter of limiters) await limiter.close();
    await client?.quit().catch(() => {});
    await cluster?.stop();
  });

  it('admits no more than the limit per key through a manual failover and a killed master, then refuses from the new masters', async () => {
    const admitted = limiters.map(() => new Map<string, number>(keys.map((key) => [key, 0])));
    // Per limiter, the keys the store refused after both failovers: saturated on the new masters.
    const saturated = limiters.map(() => new Set<string>());
    // Per limiter and key, the source and outcome of its last answer (for a failure's message).
    const last = limiters.map(() => new Map<string, string>());
    let failoversDone = false;
    let stop = false;
    const stream = (async () => {
      while (!stop) {
        const round = limiters.flatMap((limiter, index) =>
          keys.map(async (key) => {
            const result = await limiter.check(key);
            last[index]!.set(key, `${result.source} ${result.outcome}`);
            if (result.allowed) admitted[index]!.set(key, admitted[index]!.get(key)! + 1);
            if (failoversDone && result.source === 'store' && !result.allowed) saturated[index]!.add(key);
          }),
        );
        await Promise.all(round);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    })();

    const c = cluster!;
    // The stream stops however this ends: a check after afterAll closed the limiters would reject
    // unhandled (ClosedError), burying the failure under a second one.
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // A manual failover: the replica catches up, then takes the master's slots.
      const [first] = await c.masters();
      const firstPort = Number(first!.split(':')[1]);
      const [replica] = await c.replicasOf(firstPort);
      await run('redis-cli', ['-p', replica!.split(':')[1]!, 'cluster', 'failover']);
      // Until the node asked sees both sides of it: the old master is a replica now, and cannot be
      // picked below as a master still (a stale view of it), with no replica to elect.
      await until('the manual failover', async () => {
        const masters = await c.masters();
        return masters.includes(replica!) && !masters.includes(first!);
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // A master killed mid-run: its replica is elected after the node timeout.
      const second = (await c.masters()).find((address) => address !== replica)!;
      const secondPort = Number(second.split(':')[1]);
      const [secondReplica] = await c.replicasOf(secondPort);
      expect(secondReplica, `a replica of ${second}`).toBeDefined();
      c.kill(secondPort);
      await until(
        'the killed master’s replica elected',
        async () => (await c.masters()).includes(secondReplica!),
        30_000,
      );
      failoversDone = true;
      // Says which keys never saw a store refusal, and what their last answer was.
      const unsaturated = () =>
        limiters.flatMap((_, index) =>
          keys
            .filter((key) => !saturated[index]!.has(key))
            .map(
              (key) =>
                `${setups[index]!.algorithm} ${key}: ${admitted[index]!.get(key)} admitted, last ${last[index]!.get(key)}`,
            ),
        );
      await until(
        'every key refused by the new masters',
        () => saturated.every((refused) => refused.size === keys.length),
        30_000,
        () => unsaturated().join('; '),
      );
    } finally {
      stop = true;
      await stream;
    }

    for (let index = 0; index < limiters.length; index += 1)
      for (const key of keys)
        expect(admitted[index]!.get(key), `${setups[index]!.algorithm} ${key}`).toBeLessThanOrEqual(limit);
    // Every key reached its limit: a count lost in the failovers, or applied twice, would show.
    for (let index = 0; index < limiters.length; index += 1)
      expect([...admitted[index]!.values()].some((count) => count > 0)).toBe(true);
  });
});

/**
 * Polls `condition` every 100 ms until it holds, or throws after `timeoutMs` naming `what`, with
 * `state()` (what is still missing) when given.
 */
async function until(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
  state?: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${state === undefined ? '' : ` (${state()})`}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
