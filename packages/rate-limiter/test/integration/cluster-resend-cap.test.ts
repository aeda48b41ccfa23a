import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type RateLimiter,
  RedisStore,
  recommendedClusterOptions,
} from '../../src/index.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';

// A call proven unsent is sent again, at most 3 times. Here a master keeps sending one key's calls
// to a node that is never reachable: a proxy in front of it has the master answer each call for
// that key with `MOVED <slot> <unreachable node>` (it runs a script that replies exactly that, so
// the reply keeps its place among the connection's other replies). ioredis follows the redirection,
// cannot connect, and fails the call with "Connection is closed." while the socket it was written
// to is still open: the call ran nothing, so the store refreshes the slot map (which names the
// master again) and sends it again. The proxy counts the sends on the wire.

const { cluster, skip } = await startRedisClusterOrSkip(3);

/** One RESP command read from a client: its bytes and its arguments. */
interface RespCommand {
  readonly raw: Buffer;
  readonly args: readonly string[];
}

/** Splits `buffer` into the complete RESP commands at its start; `rest` is the partial tail. */
function readCommands(buffer: Buffer): { commands: RespCommand[]; rest: Buffer } {
  const commands: RespCommand[] = [];
  let at = 0;
  for (;;) {
    const start = at;
    const line = (from: number) => {
      const end = buffer.indexOf('\r\n', from);
      return end === -1 ? undefined : { text: buffer.toString('latin1', from, end), next: end + 2 };
    };
    const header = line(at);
    if (header === undefined) break;
    const count = Number(header.text.slice(1));
    let next = header.next;
    const args: string[] = [];
    for (let index = 0; index < count; index += 1) {
      const length = line(next);
      if (length === undefined) break;
      const size = Number(length.text.slice(1));
      if (length.next + size + 2 > buffer.length) break;
      args.push(buffer.toString('utf8', length.next, length.next + size));
      next = length.next + size + 2;
    }
    if (args.length < count) break;
    commands.push({ raw: buffer.subarray(start, next), args });
    at = next;
  }
  return { commands, rest: buffer.subarray(at) };
}

/** `args` as a RESP command. */
function respCommand(args: readonly string[]): Buffer {
  return Buffer.from(
    `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`,
  );
}

/**
 * A TCP proxy in front of one master that, while `movedTo` is set, has the master answer every
 * command naming `key` with `MOVED <its slot> <movedTo>`, and counts those commands.
 */
class RedirectingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  key = '';
  movedTo: string | undefined;
  redirected = 0;

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          this.#sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      let pending = Buffer.alloc(0);
      client.on('data', (data: Buffer) => {
        const { commands, rest } = readCommands(Buffer.concat([pending, data]));
        pending = Buffer.from(rest);
        for (const command of commands) {
          if (this.movedTo === undefined || !command.args.includes(this.key)) {
            upstream.write(command.raw);
            continue;
          }
          this.redirected += 1;
          const reply = `MOVED ${clusterSlot(this.key)} ${this.movedTo}`;
          upstream.write(respCommand(['EVAL', `return redis.error_reply('${reply}')`, '0']));
        }
      });
      upstream.on('data', (data) => client.write(data));
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

/** A node that accepts connections and closes them at once: never ready. */
async function unreachableNode(): Promise<{ address: string; close: () => Promise<void> }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe.skipIf(skip !== undefined)('a Cluster call refused unsent again and again', () => {
  const proxies = new Map<string, RedirectingProxy>();
  let unreachable: Awaited<ReturnType<typeof unreachableNode>>;
  let client: Cluster;
  let limiter: RateLimiter;
  const prefix = 'resend-cap:';
  const limit = 5;
  const deadlineMs = 3_000;

  beforeAll(async () => {
    unreachable = await unreachableNode();
    const natMap: Record<string, { host: string; port: number }> = {};
    for (const node of cluster!.nodes) {
      const proxy = new RedirectingProxy(node.port);
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
    limiter = createRateLimiter({
      store: new RedisStore({ client, prefix }),
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
    await client?.quit().catch(() => {});
    for (const proxy of new Set(proxies.values())) await proxy.close();
    await unreachable?.close();
    await cluster?.stop();
  });

  /** The proxy of the master that holds the limiter's `key`, redirecting that key's calls. */
  function redirect(key: string): RedirectingProxy {
    const hashKey = `${prefix}{rl:default:${key}}`;
    // ioredis names a node by its mapped address (the proxy's) or, before a mapping, the real one.
    const proxy = proxies.get(client.slots[clusterSlot(hashKey)]![0]!);
    if (proxy === undefined) throw new Error(`no proxy for ${key}`);
    proxy.key = hashKey;
    proxy.redirected = 0;
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
    expect(result).toMatchObject({ allowed: false, source: 'fallback' });
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
    const startedAt = performance.now();
    const refund = await limiter.refund('refunded', 1).then(
      () => 'refunded',
      (error: unknown) => error,
    );
    const tookMs = performance.now() - startedAt;
    proxy.movedTo = undefined;
    expect(refund).toBeInstanceOf(Error);
    expect(tookMs).toBeLessThan(deadlineMs + 1_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(proxy.redirected).toBe(4);
    expect((await limiter.peek('refunded')).remaining).toBe(limit - 1);
  });
});
