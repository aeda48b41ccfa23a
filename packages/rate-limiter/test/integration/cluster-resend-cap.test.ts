import { startRedisClusterOrSkip } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore } from '../../src/redis.js';
import { defaultNamespace } from '../rule-namespace.js';
import { proxiedCluster, type RedirectingProxy, unreachableNode } from './cluster-redirecting-proxy.js';

// A call proven unsent is sent again, at most 3 times. Here a master keeps sending one key's calls
// to a node that is never reachable (see cluster-redirecting-proxy.ts): each call is refused
// unsent, the store refreshes the slot map (which names the master again) and sends it again. The
// proxy counts the sends on the wire.

const { cluster, skip } = await startRedisClusterOrSkip(3);

describe.skipIf(skip !== undefined)('a Cluster call refused unsent again and again', () => {
  let proxied: Awaited<ReturnType<typeof proxiedCluster>>;
  let unreachable: Awaited<ReturnType<typeof unreachableNode>>;
  let limiter: RateLimiter;
  const prefix = 'resend-cap:';
  const limit = 5;
  const deadlineMs = 3_000;

  beforeAll(async () => {
    unreachable = await unreachableNode();
    proxied = await proxiedCluster(cluster!);
    limiter = createRateLimiter({
      store: new RedisStore({ client: proxied.client, prefix }),
      limits: [{ limit, windowMs: 2 ** 40 }],
      failMode: 'closed',
      // Far more than four sends take (each waits for one slot map refresh, at most 100 ms): a
      // resend that went on past the cap would have time to reach the proxy.
      deadlineMs,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
  });

  afterAll(async () => {
    await limiter?.close();
    await proxied?.close();
    await unreachable?.close();
    await cluster?.stop();
  });

  /** The proxy of the master that holds the limiter's `key`, redirecting that key's calls. */
  function redirect(key: string): RedirectingProxy {
    const hashKey = `${prefix}{${defaultNamespace([{ limit, windowMs: 2 ** 40 }])}${key}}`;
    const proxy = proxied.proxyOf(hashKey);
    proxy.key = hashKey;
    proxy.movedTo = unreachable.address;
    return proxy;
  }

  it('a check is sent 4 times (1 + 3 resends), then answered by the fail mode within its deadline', async () => {
    // Connected, its code loaded and its master's clock known.
    expect((await limiter.check('checked')).source).toBe('store');
    const proxy = redirect('checked');
    const startedAt = performance.now();
    const result = await limiter.check('checked');
    const tookMs = performance.now() - startedAt;
    proxy.movedTo = undefined;
    expect(result).toMatchObject({ allowed: false, source: 'fail-mode' });
    expect(tookMs).toBeLessThan(deadlineMs + 1_000);
    // A late resend would still reach the proxy: give it time to.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(proxy.redirected).toBe(4);
    // None of them ran: only the first check counted.
    expect((await limiter.peek('checked')).remaining).toBe(limit - 1);
  });

  it('a refund is sent 4 times (1 + 3 resends), then fails within its deadline', async () => {
    expect((await limiter.check('refunded')).source).toBe('store');
    const proxy = redirect('refunded');
    // Counted per proxy: the keys of both tests may share a master.
    const redirectedBefore = proxy.redirected;
    const startedAt = performance.now();
    const refund = await limiter.refund('refunded', 1).then(
      () => 'refunded',
      (error: unknown) => error,
    );
    const tookMs = performance.now() - startedAt;
    proxy.movedTo = undefined;
    // The fourth refusal itself, not the deadline's TimeoutError.
    expect(refund).toBeInstanceOf(Error);
    expect((refund as Error).message).toBe('Connection is closed.');
    expect(tookMs).toBeLessThan(deadlineMs + 1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(proxy.redirected - redirectedBefore).toBe(4);
    expect((await limiter.peek('refunded')).remaining).toBe(limit - 1);
  });
});
