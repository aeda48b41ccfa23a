import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of Redis that can hold back the REPLIES of one connection: once armed
 * with {@link holdRepliesAfter}, the first connection whose client sends a chunk matching the
 * pattern has everything Redis sends it from then on kept until {@link release}. The command
 * has reached Redis and been answered (it is ordered before whatever other connections send
 * next), but the client does not see the answer yet: an L2 read "in flight" for as long as a
 * test needs, while other connections (another instance, the bus) go on. It can also hold the
 * messages of the subscribed connections ({@link holdSubscribers}): an instance that has not
 * heard of a change yet.
 */
export class ReplyHoldingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #pattern: RegExp | undefined;
  #resume: (() => void) | undefined;
  #onHeld: (() => void) | undefined;
  #heldBytes = 0;
  /** Starts holding the replies (messages) of each connection that has sent a SUBSCRIBE. */
  readonly #subscribers = new Set<() => void>();
  port = 0;

  private constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      let holding = false;
      const pending: Buffer[] = [];
      const hold = () => {
        holding = true;
        const previous = this.#resume;
        this.#resume = () => {
          previous?.();
          holding = false;
          for (const buffered of pending.splice(0)) client.write(buffered);
        };
      };
      client.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        if (/subscribe/i.test(text)) this.#subscribers.add(hold);
        if (!holding && this.#pattern?.test(text)) {
          this.#pattern = undefined;
          hold();
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!holding) {
          client.write(chunk);
          return;
        }
        pending.push(chunk);
        this.#heldBytes += chunk.length;
        this.#onHeld?.();
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      client.on('close', close);
      upstream.on('close', close);
      client.on('error', close);
      upstream.on('error', close);
    });
  }

  static async start(targetPort: number): Promise<ReplyHoldingProxy> {
    const proxy = new ReplyHoldingProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    const address = proxy.#server.address();
    proxy.port = typeof address === 'object' && address ? address.port : 0;
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Holds the replies of the next connection that sends a chunk matching `pattern`. */
  holdRepliesAfter(pattern: RegExp): void {
    this.#heldBytes = 0;
    this.#pattern = pattern;
  }

  /** Holds from now on what Redis sends the subscribed connections (bus messages) until {@link release}. */
  holdSubscribers(): void {
    for (const hold of this.#subscribers) hold();
  }

  /** Resolves once a reply is being held (Redis has answered the matching command). */
  replyHeld(): Promise<void> {
    if (this.#heldBytes > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onHeld = () => {
        this.#onHeld = undefined;
        resolve();
      };
    });
  }

  /** Sends the held replies on, and holds nothing more. */
  release(): void {
    this.#pattern = undefined;
    const resume = this.#resume;
    this.#resume = undefined;
    resume?.();
  }

  async close(): Promise<void> {
    this.release();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
