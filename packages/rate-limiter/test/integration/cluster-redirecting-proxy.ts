import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { PrivateRedisCluster } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';

// Faults on the wire between a Cluster client and its masters, for the resend tests: a proxy in
// front of a master has it answer one key's calls with `MOVED <slot> <a node that never connects>`
// (it runs a script that replies exactly that, so the reply keeps its place among the
// connection's other replies). ioredis follows the redirection, cannot connect, and fails the call
// with "Connection is closed." while the socket it was written to is still open: the call ran
// nothing, and the store may send it again.

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
 * Connects `client` to the node on `targetPort` and ties their lives together: either closing
 * closes both, and `sockets` holds them while they are open (for the proxy's `close()`). The
 * caller decides what flows between them. Returns the upstream socket.
 */
export function pipeTo(client: Socket, targetPort: number, sockets: Set<Socket>): Socket {
  const upstream = connect(targetPort, '127.0.0.1');
  for (const socket of [client, upstream]) {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      client.destroy();
      upstream.destroy();
    });
  }
  return upstream;
}

/**
 * A TCP proxy in front of one master that, while `movedTo` is set, has the master answer every
 * command naming `key` with `MOVED <its slot> <movedTo>`, and counts those commands.
 */
export class RedirectingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  key = '';
  movedTo: string | undefined;
  /** How many more commands naming `key` get the MOVED (the later ones are passed on). */
  redirectsLeft = Number.POSITIVE_INFINITY;
  redirected = 0;
  /** The arguments of every command naming `key` while `movedTo` was set. */
  readonly seen: string[][] = [];

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = pipeTo(client, targetPort, this.#sockets);
      let pending = Buffer.alloc(0);
      client.on('data', (data: Buffer) => {
        const { commands, rest } = readCommands(Buffer.concat([pending, data]));
        pending = Buffer.from(rest);
        for (const command of commands) {
          if (this.movedTo === undefined || !command.args.includes(this.key)) {
            upstream.write(command.raw);
            continue;
          }
          this.seen.push([...command.args]);
          if (this.redirectsLeft <= 0) {
            upstream.write(command.raw);
            continue;
          }
          this.redirectsLeft -= 1;
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
export async function unreachableNode(): Promise<{ address: string; close: () => Promise<void> }> {
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

/** A Cluster client (`recommendedClusterOptions`, connected) whose every master is reached through its own {@link RedirectingProxy}. */
export async function proxiedCluster(
  cluster: PrivateRedisCluster,
): Promise<{ client: Cluster; proxyOf: (hashKey: string) => RedirectingProxy; close: () => Promise<void> }> {
  const proxies = new Map<string, RedirectingProxy>();
  const natMap: Record<string, { host: string; port: number }> = {};
  for (const node of cluster.nodes) {
    const proxy = new RedirectingProxy(node.port);
    const port = await proxy.listen();
    proxies.set(`127.0.0.1:${node.port}`, proxy);
    proxies.set(`127.0.0.1:${port}`, proxy);
    natMap[`127.0.0.1:${node.port}`] = { host: '127.0.0.1', port };
  }
  const client = new Cluster(
    cluster.nodes.map((node) => natMap[`127.0.0.1:${node.port}`]!),
    { ...recommendedClusterOptions, natMap },
  );
  client.on('error', () => {});
  if (client.status !== 'ready') await once(client, 'ready');
  return {
    client,
    proxyOf: (hashKey) => {
      // ioredis names a node by its mapped address (the proxy's) or, before a mapping, the real one.
      const proxy = proxies.get(client.slots[clusterSlot(hashKey)]![0]!);
      if (proxy === undefined) throw new Error(`no proxy for ${hashKey}`);
      return proxy;
    },
    close: async () => {
      await client.quit().catch(() => {});
      for (const proxy of new Set(proxies.values())) await proxy.close();
    },
  };
}
