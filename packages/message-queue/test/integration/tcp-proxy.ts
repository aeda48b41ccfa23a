import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy to a shared service that a test can cut (every connection through it dropped,
 * new ones refused) and restore on the same port, so one client loses its connection while
 * the service, and every other client of it, stays up.
 */
export interface TcpProxy {
  readonly port: number;
  /** Drops every proxied connection and refuses new ones until `restore()`. */
  cut(): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let port = 0;
  const listen = async (): Promise<Server> => {
    const server = createServer((client) => {
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
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as { port: number }).port;
    return server;
  };
  let server: Server | undefined = await listen();
  const cut = async (): Promise<void> => {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
  };
  return {
    get port() {
      return port;
    },
    cut,
    restore: async () => {
      server ??= await listen();
    },
    close: cut,
  };
}
