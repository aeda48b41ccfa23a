import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { adjustScript } from '../../src/stores/redis-adjust.js';
import { defaultNamespace } from '../rule-namespace.js';
import { pipeTo } from './cluster-redirecting-proxy.js';

// A master that runs a command and then loses the connection before its reply arrives (it is
// killed, or fails over, right after the write): the command counted, but the client cannot
// know. ioredis's Cluster client sends such a command again (to the new master) by default, after
// `retryDelayOnFailover` (100 ms): a check then counts twice, and a refund gives its points back
// twice, which admits more than the limit. Here a proxy in front of each master runs the command
// and drops its reply (closing the connection), the same loss on cue.

const { cluster, skip } = await startRedisClusterOrSkip(3);

/** A TCP proxy in front of one node that can run the next command and lose its reply. */
class ReplyDroppingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  dropNextReply = false;
  dropped = 0;

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = pipeTo(client, targetPort, this.#sockets);
      client.on('data', (data) => upstream.write(data));
      upstream.on('data', (data) => {
        if (!this.dropNextReply) {
          client.write(data);
          return;
        }
        // The command ran on the node; its caller never hears of it.
        this.dropNextReply = false;
        this.dropped += 1;
        client.destroy();
      });
    });
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

describe.skipIf(skip !== undefined)('a Cluster reply lost after the command ran', () => {
  const proxies = new Map<string, ReplyDroppingProxy>();
  let client: Cluster;
  let limiter: RateLimiter;
  const prefix = 'lost-reply:';
  const limit = 5;

  beforeAll(async () => {
    const natMap: Record<string, { host: string; port: number }> = {};
    for (const node of cluster!.nodes) {
      const proxy = new ReplyDroppingProxy(node.port);
      const port = await proxy.listen();
      proxies.set(`127.0.0.1:${node.port}`, proxy);
      proxies.set(`127.0.0.1:${port}`, proxy);
      natMap[`127.0.0.1:${node.port}`] = { host: '127.0.0.1', port };
    }
    client = new Cluster(
      cluster!.nodes.map((node) => natMap[`127.0.0.1:${node.port}`]!),
      { ...recommendedClusterOptions, natMap },
    );
    client.on('error', () => {});
    // The adjust script is loaded on every node, so that the reply lost is the refund's, not a
    // NOSCRIPT answered before it ran.
    for (const node of cluster!.nodes) {
      const direct = new Redis(node.port, '127.0.0.1');
      await direct.script('LOAD', adjustScript);
      direct.disconnect();
    }
    limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
      limits: [{ limit, windowMs: 2 ** 40 }],
      failMode: 'closed',
      // Long enough for a resend 100 ms later to land before the call's expiry.
      deadlineMs: 1_000,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
  });

  afterAll(async () => {
    await limiter?.close();
    await client?.quit().catch(() => {});
    for (const proxy of proxies.values()) await proxy.close();
    await cluster?.stop();
  });

  /** The proxy of the master that holds the limiter's `key` now. */
  function proxyOf(key: string): ReplyDroppingProxy {
    // ioredis names a node by its mapped address (the proxy's) or, before a mapping, the real one.
    const node =
      client.slots[clusterSlot(`${prefix}{${defaultNamespace([{ limit, windowMs: 2 ** 40 }])}${key}}`)]![0]!;
    const proxy = proxies.get(node);
    if (proxy === undefined) throw new Error(`no proxy for ${node}`);
    return proxy;
  }

  /** Waits past any resend ioredis would make (`retryDelayOnFailover`, 100 ms, plus a slot refresh). */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 600));

  it('a check whose reply is lost is counted once, not again by a resend', async () => {
    await limiter.check('checked');
    // Counted per proxy: the keys of both tests may share a master.
    const droppedBefore = proxyOf('checked').dropped;
    proxyOf('checked').dropNextReply = true;
    await limiter.check('checked');
    await settle();
    expect(proxyOf('checked').dropped - droppedBefore).toBe(1);
    // Two checks sent: at most two counted (one each), whatever the lost reply's fate.
    expect((await limiter.peek('checked')).remaining).toBeGreaterThanOrEqual(limit - 2);
  });

  it('a refund whose reply is lost gives its points back once: never more admitted than the limit', async () => {
    for (let index = 0; index < limit; index += 1)
      expect((await limiter.check('refunded')).allowed).toBe(true);
    const droppedBefore = proxyOf('refunded').dropped;
    proxyOf('refunded').dropNextReply = true;
    await limiter.refund('refunded', 1).catch(() => undefined);
    await settle();
    expect(proxyOf('refunded').dropped - droppedBefore).toBe(1);
    let admitted = 0;
    for (let index = 0; index < 3; index += 1) if ((await limiter.check('refunded')).allowed) admitted += 1;
    // Five admitted, one point back: one more at most.
    expect(admitted).toBeLessThanOrEqual(1);
  });
});
