import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { queryObjects } from 'node:v8';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { RedisClockOffset } from '../../src/stores/redis-clock.js';
import { defaultNamespace } from '../rule-namespace.js';
import { pipeTo } from './cluster-redirecting-proxy.js';

// A Cluster store keeps one clock offset per node it has heard from. Nodes leave the slot map
// (a master replaced after a failure, a pod rescheduled with a new address) and new ones come:
// over a service's life, entries for nodes long gone must not pile up. Here one master changes
// address again and again (a new TCP proxy in front of it each time, named by the client's
// natMap), the client refreshes its slot map, and the store checks a key that master serves;
// v8 counts the clock offsets still alive.

const { cluster, skip } = await startRedisClusterOrSkip(3);

/** A TCP proxy to one node, at a port of its own. */
async function proxyTo(targetPort: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const upstream = pipeTo(socket, targetPort, sockets);
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe.skipIf(skip !== undefined)('the clock offsets of a Cluster store', () => {
  const proxies: { port: number; close: () => Promise<void> }[] = [];
  /** Real node `host:port` → the proxy port the client reaches it by now. */
  const addressOf = new Map<string, number>();
  /** The client's natMap: real node `host:port` → the address it reaches it by now. */
  const natMap: Record<string, { host: string; port: number }> = {};
  const moveTo = (real: string, port: number) => {
    addressOf.set(real, port);
    natMap[real] = { host: '127.0.0.1', port };
  };
  let client: Cluster;

  beforeAll(async () => {
    for (const node of cluster!.nodes) {
      const proxy = await proxyTo(node.port);
      proxies.push(proxy);
      moveTo(`127.0.0.1:${node.port}`, proxy.port);
    }
    client = new Cluster(
      cluster!.nodes.map((node) => ({ host: '127.0.0.1', port: addressOf.get(`127.0.0.1:${node.port}`)! })),
      {
        ...recommendedClusterOptions,
        slotsRefreshInterval: 60_000,
        // An object, which ioredis reads at each lookup (kept current by moveTo), rather than a
        // function: ioredis takes a function only from 5.5 on, and the peer range starts at 5.4.
        natMap,
      },
    );
    client.on('error', () => {});
    await once(client, 'ready');
  });

  afterAll(async () => {
    client?.disconnect();
    for (const proxy of proxies) await proxy.close();
    await cluster?.stop();
  });

  it('are kept only for the nodes of the slot map (and one the store just met), however many came and went', async () => {
    const before = queryObjects(RedisClockOffset, { format: 'count' }) as number;
    const limiter = createRateLimiter({
      store: new RedisStore({ client, prefix: 'node-clocks:', functions: false }),
      limits: [{ limit: 1_000, windowMs: 60_000 }],
      failMode: 'closed',
      deadlineMs: 3_000,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
    // One key per master (by the address the client reaches it at): the store hears from all three.
    const namespace = defaultNamespace([{ limit: 1_000, windowMs: 60_000 }]);
    const keys = new Map<string, string>();
    for (let index = 0; keys.size < 3; index += 1) {
      const key = `k${index}`;
      const node = client.slots[clusterSlot(`node-clocks:{${namespace}${key}}`)]![0]!;
      if (!keys.has(node)) keys.set(node, key);
    }
    for (const key of keys.values()) expect(await limiter.check(key)).toMatchObject({ source: 'store' });

    // The first master moves to a new address twenty times; the store hears from it at each.
    const [real] = cluster!.nodes;
    const realKey = `127.0.0.1:${real!.port}`;
    const key = keys.get(`127.0.0.1:${addressOf.get(realKey)}`)!;
    for (let move = 0; move < 20; move += 1) {
      const proxy = await proxyTo(real!.port);
      proxies.push(proxy);
      moveTo(realKey, proxy.port);
      const refreshed = once(client, 'refresh');
      client.refreshSlotsCache();
      await refreshed;
      expect(client.slots[clusterSlot(`node-clocks:{${namespace}${key}}`)]![0]).toBe(
        `127.0.0.1:${proxy.port}`,
      );
      expect(await limiter.check(key)).toMatchObject({ source: 'store' });
    }

    // The store's own (standalone) offset, one per node of the slot map, and at most one more (a
    // node it met before the slot map named it): not one per address the master ever had.
    const alive = (queryObjects(RedisClockOffset, { format: 'count' }) as number) - before;
    expect(alive).toBeLessThanOrEqual(1 + 3 + 1);
    // And the live nodes' offsets are kept.
    expect(alive).toBeGreaterThanOrEqual(1 + 3);
    await limiter.close();
  });
});
