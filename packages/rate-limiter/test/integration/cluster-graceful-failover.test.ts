import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startReplicatedRedisClusterOrSkip } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';

// A graceful `CLUSTER FAILOVER` is routine maintenance: the replica catches up before it takes the
// slots, so nothing is lost, yet the moved master's next calls find a connection ioredis has not
// opened yet ("Connection is closed.", refused before it is written). Such a call never reached a
// server, so the store sends it again to the slot's new owner within its deadline: with
// `failMode: 'closed'`, no check is refused for want of an answer, and none is counted twice.

const run = promisify(execFile);
const limit = 1_000;
const keys = Array.from({ length: 48 }, (_, index) => `user-${index}`);

const { cluster, skip } = await startReplicatedRedisClusterOrSkip(3, 1);

describe.skipIf(skip !== undefined)('checks and refunds during a graceful Cluster failover', () => {
  let client: Cluster;
  let limiter: RateLimiter;

  beforeAll(() => {
    client = new Cluster(cluster!.nodes, { ...recommendedClusterOptions });
    client.on('error', () => {});
    limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'graceful-failover:' }),
      limits: [{ algorithm: 'fixed-window', limit, windowMs: 2 ** 40 }],
      failMode: 'closed',
      // Longer than the old master's write pause during a manual failover (at most 5 s) and than
      // connectTimeout (2 s), which bounds the new master's first connection: on this busy machine
      // either took over a second in some runs, and a call waiting past its deadline goes to the
      // fail mode (as it should: its caller could wait no longer). Only the refusals are tested.
      deadlineMs: 6_000,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
  });

  afterAll(async () => {
    await limiter?.close();
    await client?.quit().catch(() => {});
    await cluster?.stop();
  });

  it('answers every check and refund from the store, counting each once', async () => {
    const sent = new Map<string, number>(keys.map((key) => [key, 0]));
    const refunded = new Map<string, number>(keys.map((key) => [key, 0]));
    let failMode = 0;
    let failedRefunds = 0;
    let rounds = 0;
    let stop = false;
    const stream = (async () => {
      while (!stop) {
        rounds += 1;
        const round = keys.map(async (key, index) => {
          sent.set(key, sent.get(key)! + 1);
          const result = await limiter.check(key);
          if (result.source !== 'store') failMode += 1;
          // Every fourth key gives its point back each round: adjustments are resent too.
          if (index % 4 === 0 && result.allowed && result.source === 'store')
            await limiter.refund(key, 1).then(
              () => refunded.set(key, refunded.get(key)! + 1),
              () => {
                failedRefunds += 1;
              },
            );
        });
        await Promise.all(round);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    try {
      const c = cluster!;
      await new Promise((resolve) => setTimeout(resolve, 500));
      // A master whose replica is listed (CLUSTER NODES may not show a replica's link for a moment).
      let replica: string | undefined;
      await until(async () => {
        for (const master of await c.masters()) {
          [replica] = await c.replicasOf(Number(master.split(':')[1]));
          if (replica !== undefined) return true;
        }
        return false;
      });
      // A manual failover gives up after 5 s when the replica cannot catch up in time (a busy
      // machine): it is asked again until the replica serves the slots.
      await until(async () => {
        if ((await c.masters()).includes(replica!)) return true;
        await run('redis-cli', ['-p', replica!.split(':')[1]!, 'cluster', 'failover']);
        return until(async () => (await c.masters()).includes(replica!), 6_000).then(
          () => true,
          () => false,
        );
      }, 40_000);
      // Rounds keep going after the switch, until the client has moved every key (and, on a
      // loaded machine where rounds are slow, until more than 10 have run).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await until(() => rounds > 10);
    } finally {
      stop = true;
      await stream;
    }

    expect(rounds).toBeGreaterThan(10);
    expect(failMode).toBe(0);
    expect(failedRefunds).toBe(0);
    // Each key's count on Redis is exactly its checks less its refunds: nothing lost, nothing twice.
    for (const key of keys) {
      const { remaining } = await limiter.peek(key);
      expect(limit - remaining, key).toBe(sent.get(key)! - refunded.get(key)!);
    }
  });
});

/** Polls `condition` every 100 ms until it holds (or throws after `timeoutMs`). */
async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
