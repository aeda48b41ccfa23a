import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a Redis server that can hold back the SUBSCRIBE of a connection:
 * while `holdSubscribe` is on, the first chunk a client sends that contains a SUBSCRIBE, and
 * everything after it on that connection, wait until `release()`. It stretches the window
 * between a bus connection being ready again and its subscription taking effect, which is one
 * round trip in production and too short to hit from a test.
 */
export class HoldingProxy {
  holdSubscribe = false;
  /** Holds, like a SUBSCRIBE, the first chunk of a connection that matches (until `release()`). */
  holdMatching: RegExp | undefined;
  /** Occurrences of `holdMatching` (a global RegExp then) let through before the hold starts. */
  passMatches = 0;
  /**
   * Every chunk a client sends reaches Redis this much later (in order): a floor under each
   * round trip, so an operation of many round trips takes at least their number times it,
   * however fast the machine. Lowered, later chunks still wait behind those already delayed
   * (a connection's bytes never reorder), so a test need not wait for them to drain.
   */
  delayMs = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #held: (() => void)[] = [];
  #onHeld: (() => void) | undefined;
  port = 0;

  private constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      this.#sockets.add(client);
      this.#sockets.add(upstream);
      let holding = false;
      const pending: Buffer[] = [];
      // Delayed chunks, oldest first, each with when it may reach Redis; one timer sends them.
      const delayed: { chunk: Buffer; at: number }[] = [];
      let sending: NodeJS.Timeout | undefined;
      const sendDue = () => {
        sending = undefined;
        while (delayed.length > 0 && delayed[0]!.at <= Date.now()) upstream.write(delayed.shift()!.chunk);
        if (delayed.length > 0) sending = setTimeout(sendDue, delayed[0]!.at - Date.now());
      };
      client.on('data', (chunk: Buffer) => {
        const text = chunk.toString('latin1');
        const matches = (this.holdSubscribe && /subscribe/i.test(text)) || this.#matches(text);
        if (!holding && matches) {
          holding = true;
          this.#held.push(() => {
            holding = false;
            for (const buffered of pending.splice(0)) upstream.write(buffered);
          });
          this.#onHeld?.();
        }
        if (holding) pending.push(chunk);
        else if (this.delayMs > 0 || delayed.length > 0) {
          delayed.push({ chunk, at: Date.now() + this.delayMs });
          sending ??= setTimeout(sendDue, delayed[0]!.at - Date.now());
        } else upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
      const close = () => {
        clearTimeout(sending);
        delayed.length = 0;
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

  #matches(text: string): boolean {
    if (this.holdMatching === undefined) return false;
    const found = text.match(this.holdMatching)?.length ?? 0;
    if (found === 0) return false;
    if (this.passMatches >= found) {
      this.passMatches -= found;
      return false;
    }
    return true;
  }

  static async start(targetPort: number): Promise<HoldingProxy> {
    const proxy = new HoldingProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    const address = proxy.#server.address();
    proxy.port = typeof address === 'object' && address ? address.port : 0;
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Resolves once a SUBSCRIBE is being held (at once if one already is). */
  held(): Promise<void> {
    if (this.#held.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onHeld = () => {
        this.#onHeld = undefined;
        resolve();
      };
    });
  }

  /** Sends every held SUBSCRIBE (and what followed it) on, and stops holding new ones. */
  release(): void {
    this.holdSubscribe = false;
    this.holdMatching = undefined;
    this.passMatches = 0;
    for (const resume of this.#held.splice(0)) resume();
  }

  async close(): Promise<void> {
    this.release();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
