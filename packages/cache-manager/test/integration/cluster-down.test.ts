import { delay, withDeadline } from '@noa/core';
import { type PrivateRedisCluster, startRedisCluster, startTcpProxy, type TcpProxy } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('a private Redis Cluster');

/** Long, so that a call that waited for the Cluster to be ready stands out from one that did not. */
const OPERATION_TIMEOUT_MS = 5_000;
/** Generous (2 noisy cores): a call that fails at once is far below it, one that waited is above. */
const PROMPT_BOUND_MS = OPERATION_TIMEOUT_MS / 2;

/** `work`'s outcome (its value or what it threw) and how long it took (ms); 20 s at most. */
async function timed(label: string, work: () => Promise<unknown>): Promise<[unknown, number]> {
  const started = performance.now();
  const outcome = await withDeadline(
    work().catch((error: unknown) => error),
    20_000,
    label,
  );
  return [outcome, performance.now() - started];
}

/**
 * A Cluster client whose every master is down (each behind a proxy that stops listening, as a
 * stopped server does): once the client has failed to reconnect, the cache's calls fail at
 * once, unsent, as on a single node; a cache created then too; and it recovers once the
 * masters are back. The client has `retryDelayOnFailover: 0`, as the README asks.
 */
describe.skipIf(!hasRedisServer)('Redis Cluster with every master down', () => {
  let cluster: PrivateRedisCluster | undefined;
  const proxies: TcpProxy[] = [];
  const clients: Cluster[] = [];
  const caches: Cache[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    for (const { port } of cluster.nodes) {
      const proxy = await startTcpProxy(`redis://127.0.0.1:${port}`);
      proxies.push(proxy);
    }
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    for (const proxy of proxies) await proxy.close();
    await cluster?.stop();
  });

  /** A ready Cluster client: through the proxies (`throughProxies`), or straight to the nodes. */
  async function connect(throughProxies: boolean): Promise<Cluster> {
    const nodes = cluster!.nodes;
    const client = throughProxies
      ? new Cluster(
          proxies.map((proxy) => ({ host: '127.0.0.1', port: proxy.port })),
          {
            // The nodes announce their own ports: the client reaches each through its proxy.
            natMap: Object.fromEntries(
              nodes.map(({ port }, index) => [
                `127.0.0.1:${port}`,
                { host: '127.0.0.1', port: proxies[index]!.port },
              ]),
            ),
            retryDelayOnFailover: 0,
          },
        )
      : new Cluster(nodes);
    client.on('error', () => {});
    clients.push(client);
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    return client;
  }

  it('fails calls at once, unsent, once the client failed to reconnect, and recovers', async () => {
    const client = await connect(true);
    const direct = await connect(false);
    // No cache on it until the masters are down: none watched it fail. With no command to send,
    // ioredis keeps it `ready` all along (its node connections never ended): the cache sends its
    // calls, and ioredis fails them at once on the refused connections.
    const idle = await connect(true);
    const options = {
      prefix: 'all-down:',
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      onBackendError: 'throw' as const,
      breaker: { consecutiveFailures: 1_000 },
    };
    const cache = new Cache({ ...options, redis: client });
    const peer = new Cache({ ...options, redis: direct });
    caches.push(cache, peer);
    await Promise.all([cache.ready(), peer.ready()]);
    await cache.set('k', 'v1', { tags: ['t'] });

    await Promise.all(proxies.map((proxy) => proxy.down()));
    // At the drop, before ioredis has noticed: not held for the deadline either.
    const [atDrop, atDropMs] = await timed('set', () => cache.set('k', 'at the drop'));
    expect(atDrop).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
    expect(atDropMs, `a set at the drop took ${atDropMs.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
    // The drop, then a failed attempt.
    let reconnects = 0;
    client.on('reconnecting', () => {
      reconnects += 1;
    });
    const until = Date.now() + 10_000;
    while (Date.now() < until && reconnects < 2) await delay(20);
    expect(client.status).not.toBe('ready');

    const calls: [string, () => Promise<unknown>][] = [
      ['set', () => cache.set('k', 'v2')],
      ['get', () => cache.get('absent')],
      ['delete', () => cache.delete('k')],
      ['getOrSet', () => cache.getOrSet('computed', () => 'computed')],
      ['deleteByTag', () => cache.deleteByTag('t')],
    ];
    for (const [label, call] of calls) {
      const [outcome, ms] = await timed(label, call);
      expect(outcome, label).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
      expect(ms, `${label} took ${ms.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
    }
    // A cache created now, on a failing client no cache watched: its start and first call are as prompt.
    const fresh = new Cache({ ...options, redis: idle });
    caches.push(fresh);
    const [, readyMs] = await timed('ready', () => fresh.ready());
    expect(readyMs, `ready() took ${readyMs.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);
    const [first, firstMs] = await timed('first set', () => fresh.set('k', 'v3'));
    expect(first).toMatchObject({ code: 'NOA_CACHE_BACKEND_UNAVAILABLE' });
    expect(firstMs, `the first set took ${firstMs.toFixed(0)} ms`).toBeLessThan(PROMPT_BOUND_MS);

    // Back: ioredis reconnects on its own, writes land, and the bus carries messages again.
    await Promise.all(proxies.map((proxy) => proxy.up()));
    const recovered = Date.now() + 20_000;
    while (
      Date.now() < recovered &&
      (await cache.set('after', 'recovered').catch(() => 'failed')) === 'failed'
    )
      await delay(100);
    expect(await direct.get('all-down:v:after')).not.toBeNull();
    await peer.set('shared', 'before');
    expect(await cache.get('shared')).toBe('before');
    await peer.set('shared', 'after');
    const evicted = Date.now() + 10_000;
    while (Date.now() < evicted && cache.getLocal('shared') === 'before') await delay(20);
    expect(await cache.get('shared')).toBe('after');
    // Nothing written while the masters were down landed late.
    expect(await direct.get('all-down:v:k')).not.toBeNull();
    expect(await cache.get('k')).toBe('v1');
  }, 90_000);
});
