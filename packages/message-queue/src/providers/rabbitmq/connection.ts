import { ClosedError, type Logger } from '@noa/core';
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import { loadAmqplib } from './amqplib-import.js';

/** What {@link AmqpConnection} needs: where to connect, its backoff, and what to do on (re)connect, loss and close. */
export interface AmqpConnectionOptions {
  url: string;
  connectionName: string;
  /** First reconnect delay; doubles up to `maxReconnectDelayMs`. */
  reconnectDelayMs: number;
  maxReconnectDelayMs: number;
  /** Per attempt: a host that drops packets fails after this long instead of the OS's TCP timeout. */
  connectTimeoutMs: number;
  logger: Logger;
  /** A new connection is open (its generation counted, its publisher channel ready). */
  onConnected: () => void;
  /** The connection (or a channel of it) closed and was forgotten. */
  onLost: () => void;
  /** `close()` was called: the provider is closed, the connection not yet. */
  onClosing: () => void;
}

/** A connection lost sooner than this after opening counts toward the reconnect backoff. */
const quickLossMs = 1_000;

/**
 * How recently the broker must have been heard from (a delivery, a publish confirm, a probe's
 * reply) for an answer made in this process to stand for the broker's: past it, `answered()`
 * waits for a probe. A frozen broker (SIGSTOP) keeps its sockets open, so `connected` alone
 * says nothing of it until amqplib's heartbeat gives up (two missed 60 s beats).
 */
export const brokerFreshMs = 1_000;

/**
 * The exchange a probe declares passively: every vhost has it and it cannot be deleted, and a
 * passive declare needs no permission (the default exchange `''` is refused).
 */
const probeExchange = 'amq.direct';

/**
 * The RabbitMQ provider's connections: one for publishing (its confirm channel) and one for
 * consuming and declaring, as RabbitMQ advises. A memory or disk alarm blocks a connection
 * that publishes (the broker stops reading its socket), so on a shared one the workers' acks,
 * which free the broker's memory, would wait behind a blocked `add` and nothing would move.
 * The pair connects on demand with exponential backoff and is lost and reconnected as one when
 * either connection or any of its channels closes. Each connection, and each loss, is a new
 * `generation`, so deliveries of a dead channel are told apart (the broker has requeued them).
 */
export class AmqpConnection {
  readonly #options: AmqpConnectionOptions;
  /** The publishing connection. */
  #model: ChannelModel | undefined;
  /** The consuming connection: consumer channels and declares (see the class comment). */
  #consuming: ChannelModel | undefined;
  #publisher: ConfirmChannel | undefined;
  #generation = 0;
  #connecting: Promise<void> | undefined;
  #closed = false;
  #lastError: string | undefined;
  /** The connections `close()` is closing, until the broker confirms (see `abandon`). */
  #closingModels: ChannelModel[] = [];
  /** The channel declares run on (see `declarer`). */
  readonly #declarer = new KeptChannel();
  /** When the current connection opened, and how many in a row were lost soon after opening. */
  #connectedAt = 0;
  #quickLosses = 0;
  /** When the broker last sent something on the current connection (`performance.now()`). */
  #heardAt = Number.NEGATIVE_INFINITY;
  /** The probe in flight (one per connection), see `answered`. */
  #probing: { model: ChannelModel; done: Promise<void> } | undefined;
  /** The channel probes run on (see `answered`). */
  readonly #prober = new KeptChannel();

  constructor(options: AmqpConnectionOptions) {
    this.#options = options;
  }

  /**
   * Counts connections and their losses: a delivery of an older generation came on a channel
   * that is gone.
   */
  get generation(): number {
    return this.#generation;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether both connections are open now (false while connecting or reconnecting). */
  get connected(): boolean {
    return this.#model !== undefined && this.#consuming !== undefined && this.#publisher !== undefined;
  }

  /** Connected, and the broker heard from within {@link brokerFreshMs}. */
  get fresh(): boolean {
    return this.connected && performance.now() - this.#heardAt < brokerFreshMs;
  }

  /** The broker sent something on the current connection (a delivery, a confirm, a reply). */
  heard(): void {
    this.#heardAt = performance.now();
  }

  /**
   * Resolves once the broker is known to answer: connected (waiting for a connection as
   * `ready()` does) and heard from within {@link brokerFreshMs}, else after a probe's reply (a
   * passive declare of `amq.direct` on a channel of its own, one in flight per connection). No
   * deadline of its own: a frozen broker leaves it pending, which is how the caller (a worker's
   * exchange or maintenance, bounded by its `backendTimeoutMs`) finds the broker down. A
   * connection lost meanwhile is waited out like one that is down; other failures reject.
   */
  async answered(): Promise<void> {
    while (true) {
      const { consuming } = await this.ready();
      if (performance.now() - this.#heardAt < brokerFreshMs) return;
      const generation = this.#generation;
      try {
        await this.#probe(consuming);
        return;
      } catch (error) {
        if (this.#closed || this.#generation === generation) throw error;
      }
    }
  }

  #probe(model: ChannelModel): Promise<void> {
    if (this.#probing?.model === model) return this.#probing.done;
    const done = (async () => {
      const channel = await this.#prober.on(model);
      await channel.checkExchange(probeExchange);
      if (this.#consuming === model) this.heard();
    })().finally(() => {
      if (this.#probing?.done === done) this.#probing = undefined;
    });
    this.#probing = { model, done };
    return done;
  }

  /** The broker's version (`server-properties`) on the current connection, if connected. */
  get serverVersion(): string | undefined {
    const version = this.#model?.connection.serverProperties.version;
    return typeof version === 'string' ? version : undefined;
  }

  /** Why the last connection attempt failed (cleared once one succeeds). */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Resolves with an open publisher channel and the consuming connection (`consuming`, for
   * consumer channels), connecting (with backoff) if needed.
   */
  async ready(): Promise<{ publisher: ConfirmChannel; consuming: ChannelModel }> {
    while (true) {
      if (this.#closed) throw new ClosedError('RabbitMqProvider');
      if (this.#model && this.#consuming && this.#publisher)
        return { publisher: this.#publisher, consuming: this.#consuming };
      this.#connecting ??= this.#connect().finally(() => {
        this.#connecting = undefined;
      });
      await this.#connecting;
    }
  }

  /**
   * A plain channel for declares, apart from the publisher: a declare the broker refuses (406
   * PRECONDITION_FAILED) closes this channel only, where on the publisher it would be taken for
   * a lost connection and reconnected at once, in a loop. Created again after such a close.
   */
  async declarer(): Promise<Channel> {
    const { consuming: model } = await this.ready();
    return this.#declarer.on(model);
  }

  async #connect(): Promise<void> {
    const amqp = await loadAmqplib();
    const options = this.#options;
    let attempt = 0;
    if (this.#quickLosses > 0) {
      // The last connections were lost right after opening (a channel the broker keeps closing):
      // reconnecting at once would loop, so these reconnects back off too.
      const wait = Math.min(
        options.maxReconnectDelayMs,
        options.reconnectDelayMs * 2 ** (this.#quickLosses - 1),
      );
      await new Promise((resolve) => setTimeout(resolve, wait).unref());
    }
    while (!this.#closed) {
      try {
        const model = await amqp.connect(options.url, {
          clientProperties: { connection_name: options.connectionName },
          // Acks and confirms are small writes: without this, Nagle + delayed ACK add ~40 ms tails.
          noDelay: true,
          timeout: options.connectTimeoutMs,
        });
        model.on('error', () => {});
        model.on('close', () => this.lost(model));
        // A memory or disk alarm: publishes (adds, retries) wait for it; consuming goes on.
        model.on('blocked', (reason: string) =>
          options.logger.warn('RabbitMQ blocked the publishing connection', { reason }),
        );
        model.on('unblocked', () => options.logger.info('RabbitMQ unblocked the publishing connection'));
        let consuming: ChannelModel;
        let publisher: ConfirmChannel;
        try {
          publisher = await model.createConfirmChannel();
          publisher.on('error', () => {});
          publisher.on('close', () => this.lost(model));
          consuming = await amqp.connect(options.url, {
            clientProperties: { connection_name: options.connectionName },
            noDelay: true,
            timeout: options.connectTimeoutMs,
          });
        } catch (error) {
          await model.close().catch(() => undefined);
          throw error;
        }
        consuming.on('error', () => {});
        consuming.on('close', () => this.lost(consuming));
        if (this.#closed) {
          // close() ran during the handshake: these connections have no owner left to close them.
          await Promise.all([model.close().catch(() => undefined), consuming.close().catch(() => undefined)]);
          return;
        }
        this.#generation += 1;
        this.#model = model;
        this.#consuming = consuming;
        this.#publisher = publisher;
        this.#lastError = undefined;
        this.#connectedAt = Date.now();
        // Its handshake just answered.
        this.heard();
        if (attempt > 0) options.logger.info('reconnected to RabbitMQ', { attempts: attempt });
        options.onConnected();
        return;
      } catch (error) {
        attempt += 1;
        this.#lastError = error instanceof Error ? error.message : String(error);
        const wait = Math.min(options.maxReconnectDelayMs, options.reconnectDelayMs * 2 ** (attempt - 1));
        options.logger.warn('RabbitMQ connection failed; retrying', {
          attempt,
          waitMs: wait,
          error: this.#lastError,
        });
        // Unref'd, so a provider that is closed while reconnecting does not hold the process.
        await new Promise((resolve) => setTimeout(resolve, wait).unref());
      }
    }
  }

  /**
   * A connection (or a channel of it) closed: forget both, closing the other; deliveries are
   * requeued by the broker.
   */
  lost(model: ChannelModel): void {
    if (this.#model !== model && this.#consuming !== model) return;
    const other = model === this.#model ? this.#consuming : this.#model;
    // A new generation at once, not at the reconnect: until then (broker unreachable) a delivery
    // of the dead channel must not pass for live, nor a finished try's ack for delivered.
    this.#generation += 1;
    this.#model = undefined;
    this.#consuming = undefined;
    this.#publisher = undefined;
    this.#heardAt = Number.NEGATIVE_INFINITY;
    this.#quickLosses = Date.now() - this.#connectedAt < quickLossMs ? this.#quickLosses + 1 : 0;
    void model.close().catch(() => {});
    void other?.close().catch(() => {});
    this.#options.onLost();
    if (!this.#closed) {
      this.#options.logger.warn('RabbitMQ connection lost; reconnecting');
      void this.ready().catch(() => {});
    }
  }

  /** Closes the connection for good (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#options.onClosing();
    const models = [this.#model, this.#consuming].filter((model) => model !== undefined);
    this.#model = undefined;
    this.#consuming = undefined;
    this.#publisher = undefined;
    this.#closingModels = models;
    await Promise.all(models.map((model) => model.close().catch(() => undefined)));
    this.#closingModels = [];
  }

  /**
   * Drops the socket of a `close()` the broker does not answer (frozen, partitioned), so its
   * socket and heartbeat timers stop holding the process. amqplib has no public way to do it;
   * destroying its stream with an error runs its own socket-failure teardown.
   */
  abandon(): void {
    for (const model of this.#closingModels) {
      const connection = model.connection as unknown as
        | { stream?: { destroy(error: Error): void } }
        | undefined;
      connection?.stream?.destroy(new Error('RabbitMQ did not confirm the close in time'));
    }
  }
}

/**
 * A plain channel kept on a connection, created again after it closed (or failed to open) or
 * once the connection is another. Its `error` events are not news: a refusal reaches the
 * caller of the call that caused it.
 */
class KeptChannel {
  #channel: Promise<Channel> | undefined;
  #model: ChannelModel | undefined;

  /** The channel on `model`. */
  on(model: ChannelModel): Promise<Channel> {
    if (this.#channel && this.#model === model) return this.#channel;
    const created = model.createChannel().then((channel) => {
      channel.on('error', () => {});
      channel.on('close', () => {
        if (this.#channel === created) this.#channel = undefined;
      });
      return channel;
    });
    created.catch(() => {
      if (this.#channel === created) this.#channel = undefined;
    });
    this.#channel = created;
    this.#model = model;
    return created;
  }
}
