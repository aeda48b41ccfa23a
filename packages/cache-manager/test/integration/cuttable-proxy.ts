import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy to a Redis server that can be cut (its connections reset, new ones refused
 * while cut) and mended: one instance's network partition, while the others stay connected.
 */
export class CuttableProxy {
  cut = false;
  readonly #sockets = new Set<Socket>();
  readonly #server: Server;
  port = 0;

  constructor(target: URL) {
    this.#server = createServer((client) => {
      if (this.cut) {
        client.destroy();
        return;
      }
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => {
          this.#sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
        socket.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    this.port = typeof address === 'object' && address ? address.port : 0;
  }

  sever(): void {
    this.cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  /**
   * As a stopped server looks: connections reset and new ones refused (nothing listens on the
   * port) until {@link up}.
   */
  async down(): Promise<void> {
    await this.close();
  }

  /** Listens again on the same port and passes connections through. */
  async up(): Promise<void> {
    this.cut = false;
    await new Promise<void>((resolve) => this.#server.listen(this.port, '127.0.0.1', resolve));
  }

  async close(): Promise<void> {
    this.sever();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
