import { startRedisClusterOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { checkScript } from '../../src/stores/lua-script.js';
import { adjustScript } from '../../src/stores/redis-adjust.js';
import { defaultNamespace } from '../rule-namespace.js';
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
    // The scripts on every master, so that each send is one EVALSHA.
    for (const node of cluster!.nodes) {
      const direct = new Redis(node.port, '127.0.0.1');
      await direct.script('LOAD', checkScript);
      await direct.script('LOAD', adjustScript);
      direct.disconnect();
    }
  });

  afterAll(async () => {
    await proxied?.close();
    await unreachable?.close();
    await cluster?.stop();
  });

  /**
   * The expiries (Redis ms, 0: none) that `call`'s sends of `key` carry on the wire, the first one
   * redirected to a node that never connects, run on a new store (that has heard from no master);
   * and the master's `TIME` before and after.
   */
  async function expiriesOf(key: string, call: (limiter: RateLimiter) => Promise<unknown>) {
    // The limiter records its namespace in the background when it starts: awaited, so that those
    // commands are not on the wire with the call watched.
    const record = `${prefix}{rl:default}:namespaces`;
    await proxied.client.del(record);
    const limiter = createRateLimiter({
      store: new RedisStore({ client: proxied.client, prefix, functions: false }),
      limits: [{ limit: 5, windowMs: 2 ** 40 }],
      failMode: 'closed',
      deadlineMs,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
    const hashKey = `${prefix}{${defaultNamespace([{ limit: 5, windowMs: 2 ** 40 }])}${key}}`;
    for (let waited = 0; (await proxied.client.pttl(record)) < 0; waited += 10) {
      expect(waited, 'the limiter’s record of its namespace').toBeLessThan(5_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const before = await redisNowMs(proxied.client, hashKey);
    const proxy = proxied.proxyOf(hashKey);
    proxy.key = hashKey;
    proxy.redirectsLeft = 1;
    proxy.movedTo = unreachable.address;
    const outcome = await call(limiter);
    proxy.movedTo = undefined;
    const after = await redisNowMs(proxied.client, hashKey);
    await limiter.close();
    // EVALSHA sha numkeys key… expiry …
    const expiries = proxy.seen.splice(0).map((args) => Number(args[3 + Number(args[2])]));
    return { outcome, expiries, before, after };
  }

  it("a check carries that master's clock, learnt before the resend", async () => {
    const { outcome, expiries, before, after } = await expiriesOf('checked', (limiter) =>
      limiter.check('checked'),
    );
    expect(outcome).toMatchObject({ source: 'store', allowed: true });
    expect(expiries).toHaveLength(2);
    // The first send: the store had no clock for that master yet.
    expect(expiries[0]).toBe(0);
    // The resend's: that master's time at the caller's give-up (at least the deadline after the
    // call began, at most one round trip of its TIME, plus slack, after).
    expect(expiries[1]).toBeGreaterThanOrEqual(before + deadlineMs);
    expect(expiries[1]).toBeLessThanOrEqual(after + deadlineMs + 1_000);
  });

  it("a refund carries that master's clock, learnt before the resend", async () => {
    const { outcome, expiries, before, after } = await expiriesOf('refunded', (limiter) =>
      limiter.refund('refunded', 1).then(() => 'refunded'),
    );
    expect(outcome).toBe('refunded');
    expect(expiries).toHaveLength(2);
    expect(expiries[0]).toBe(0);
    expect(expiries[1]).toBeGreaterThanOrEqual(before + deadlineMs);
    expect(expiries[1]).toBeLessThanOrEqual(after + deadlineMs + 1_000);
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
