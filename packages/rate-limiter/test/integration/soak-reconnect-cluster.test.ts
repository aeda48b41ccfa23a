import { activeTimers, listenerCounts, liveObjects, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

/**
 * soak-reconnect.test.ts on a Redis Cluster: every master's connections killed again and again
 * (ioredis makes new node connections, and may refresh its slot map), with checks spread over
 * the slots in between. The Cluster client keeps its listeners, the checks leave no promise
 * behind, and `close()` leaves no timer.
 */

const { cluster, skip } = await startRedisClusterOrSkip(3);

async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 8_000,
): Promise<void> {
  const giveUp = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(skip !== undefined)('a Redis Cluster limiter over many reconnects (soak)', () => {
  const admins = (cluster?.nodes ?? []).map((node) => new Redis(node.port, node.host, { lazyConnect: true }));
  afterAll(async () => {
    for (const admin of admins) admin.disconnect();
    await cluster?.stop();
  });

  async function allFromStore(limiter: RateLimiter, round: number): Promise<boolean> {
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, index) => limiter.check(`w${round}-${index}`)),
    );
    return results.every((result) => result.source === 'store');
  }

  it('keeps the client’s listeners and live promises flat; close() leaves no timer', async () => {
    for (const admin of admins) await admin.connect();
    const before = activeTimers();
    const client = new Cluster(cluster!.nodes, { ...recommendedRedisOptions, enableOfflineQueue: true });
    client.on('error', () => {});
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'soak:' }),
      limits: [{ limit: 5, windowMs: 2_000 }],
      failMode: 'local',
      deadlineMs: 300,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 50 },
    });
    const cycle = async (round: number) => {
      await Promise.all(Array.from({ length: 200 }, (_, index) => limiter.check(`k${round}-${index % 60}`)));
      // Every few rounds one master stalls past the deadline: its checks answered by the fail
      // mode, their replies arriving after their callers left.
      if (round % 3 === 2) {
        await admins[round % admins.length]!.call('CLIENT', 'PAUSE', '500', 'ALL');
        await Promise.all(Array.from({ length: 60 }, (_, index) => limiter.check(`p${round}-${index}`)));
      }
      for (const admin of admins) await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await until(() => allFromStore(limiter, round), 'checks answered by the cluster again');
    };
    await cycle(0);
    const baseListeners = listenerCounts(client);
    const basePromises = liveObjects(Promise);
    for (let round = 1; round <= 8; round += 1) await cycle(round);
    expect(listenerCounts(client)).toEqual(baseListeners);
    for (const node of client.nodes('all'))
      expect(Math.max(0, ...Object.values(listenerCounts(node)))).toBeLessThan(5);
    expect(liveObjects(Promise) - basePromises).toBeLessThan(300);
    await limiter.close();
    await client.quit();
    await until(() => activeTimers() <= before, `timers back to ${before} (${activeTimers()})`);
  }, 30_000);
});
