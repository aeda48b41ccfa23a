import { startRedisClusterOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, RedisStore } from '../../src/index.js';
import { checkScript } from '../../src/stores/lua-script.js';
import { proxiedCluster, unreachableNode } from './cluster-redirecting-proxy.js';

// A call resent after a failover lands on a master the store has not heard from: its expiry must
// be in that master's clock (Redis hosts' clocks may differ by hundreds of ms), so the store asks
// that master's `TIME` before it sends the call again. Skew itself is modelled in
// test/resend-expiry.test.ts; here the proxy reads the expiry each send carries on the wire.

const { cluster, skip } = await startRedisClusterOrSkip(3);

describe.skipIf(skip !== undefined)('a Cluster call resent to a master not heard from', () => {
  let proxied: Awaited<ReturnType<typeof proxiedCluster>>;
  let unreachable: Awaited<ReturnType<typeof unreachableNode>>;
  const prefix = 'resend-expiry:';
  const deadlineMs = 3_000;

  beforeAll(async () => {
    unreachable = await unreachableNode();
    proxied = await proxiedCluster(cluster!);
    // The check script on every master, so that each send is one EVALSHA.
    for (const node of cluster!.nodes) {
      const direct = new Redis(node.port, '127.0.0.1');
      await direct.script('LOAD', checkScript);
      direct.disconnect();
    }
  });

  afterAll(async () => {
    await proxied?.close();
    await unreachable?.close();
    await cluster?.stop();
  });

  it("carries that master's clock, learnt before the resend", async () => {
    // A new store: it has heard from no master, so its first send carries no expiry.
    const limiter = createRateLimiter({
      store: new RedisStore({ client: proxied.client, prefix, functions: false }),
      limits: [{ limit: 5, windowMs: 2 ** 40 }],
      failMode: 'closed',
      deadlineMs,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
    const hashKey = `${prefix}{rl:default:first}`;
    const before = await redisNowMs(proxied.client, hashKey);
    const proxy = proxied.proxyOf(hashKey);
    proxy.key = hashKey;
    proxy.redirectsLeft = 1;
    proxy.movedTo = unreachable.address;
    const result = await limiter.check('first');
    proxy.movedTo = undefined;
    const after = await redisNowMs(proxied.client, hashKey);
    expect(result.source).toBe('store');
    // EVALSHA sha numkeys key… expiry …
    const expiries = proxy.seen.map((args) => Number(args[3 + Number(args[2])]));
    expect(expiries).toHaveLength(2);
    expect(expiries[0]).toBe(0);
    // The resend's: that master's time at the caller's give-up (within the deadline of now).
    expect(expiries[1]).toBeGreaterThan(before);
    expect(expiries[1]).toBeLessThanOrEqual(after + deadlineMs + 10);
    await limiter.close();
  });
});

/** The `TIME` (ms) of the master serving `hashKey`. */
async function redisNowMs(client: Awaited<ReturnType<typeof proxiedCluster>>['client'], hashKey: string) {
  const [seconds, micros] = (await client.eval("return redis.call('TIME')", 1, hashKey)) as [
    string | number,
    string | number,
  ];
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}
