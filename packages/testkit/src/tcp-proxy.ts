import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy to a service (a shared Redis, RabbitMQ…) that a test can cut while the service,
 * and every other client of it, stays up: one client's network partition or its server's
 * outage, seen from that client only.
 */
export interface TcpProxy {
  /** The port the proxy listens on (kept across {@link down} and {@link up}). */
  readonly port: number;
  /** Resets every proxied connection, and each new one, until {@link mend} (the port still accepts). */
  sever(): void;
  /** Passes new connections through again after {@link sever}. */
  mend(): void;
  /**
   * As a frozen server looks (SIGSTOP, a silent partition): connections stay open and new ones
   * are accepted, but nothing is passed on in either direction until {@link thaw}.
   */
  freeze(): void;
  /**
   * Holds back what clients send (what the server sends still passes) from the first chunk a
   * client sends that `match` accepts (that chunk included) until {@link thaw}: e.g. a message's
   * ack, then lost when the test severs the connection, while the server saw nothing amiss.
   */
  holdClientFrom(match: (chunk: Buffer) => boolean): void;
  /** Passes on what was held back during {@link freeze} or {@link holdClientFrom}, and everything after it. */
  thaw(): void;
  /** As a stopped server looks: connections reset and new ones refused (nothing listens) until {@link up}. */
  down(): Promise<void>;
  /** Listens again on the same port and passes connections through. */
  up(): Promise<void>;
  close(): Promise<void>;
}

/** The ports a service URL without one means. */
const defaultPorts: Record<string, number> = { 'redis:': 6379, 'rediss:': 6380, 'amqp:': 5672 };

/** Starts a {@link TcpProxy} to `target` (a host and port, or a service URL) on a free port of 127.0.0.1. */
export async function startTcpProxy(to: { host: string; port: number } | string): Promise<TcpProxy> {
  const url = typeof to === 'string' ? new URL(to) : undefined;
  const target = url
    ? { host: url.hostname, port: Number(url.port) || defaultPorts[url.protocol]! }
    : (to as { host: string; port: number });
  const sockets = new Set<Socket>();
  let severed = false;
  let frozen = false;
  /** Holding back what clients send (see `holdClientFrom`). */
  let clientHeld = false;
  let holdFrom: ((chunk: Buffer) => boolean) | undefined;
  /** The data held back while frozen, in order, with the socket it goes to. */
  const held: { to: Socket; chunk: Buffer }[] = [];
  let port = 0;
  const server: Server = createServer((client) => {
    if (severed) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    // By hand rather than pipe(): a frozen proxy must keep reading (as the frozen server's
    // kernel still accepts bytes) and forward nothing.
    const forward = (to: Socket) => (chunk: Buffer) => {
      if (to === upstream && holdFrom?.(chunk)) {
        holdFrom = undefined;
        clientHeld = true;
      }
      if (frozen || (clientHeld && to === upstream)) held.push({ to, chunk });
      else to.write(chunk);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
  });
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const sever = () => {
    severed = true;
    for (const socket of sockets) socket.destroy();
  };
  const down = async () => {
    sever();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  await listen();
  port = (server.address() as { port: number }).port;
  return {
    get port() {
      return port;
    },
    sever,
    mend: () => {
      severed = false;
    },
    freeze: () => {
      frozen = true;
    },
    holdClientFrom: (match) => {
      holdFrom = match;
    },
    thaw: () => {
      frozen = false;
      clientHeld = false;
      holdFrom = undefined;
      for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    down,
    up: async () => {
      severed = false;
      if (!server.listening) await listen();
    },
    close: down,
  };
}
