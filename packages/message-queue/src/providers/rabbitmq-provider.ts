import { randomBytes } from 'node:crypto';
import { ClosedError, childLogger, type Logger, parseOptions, silentLogger } from '@noa/core';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import { z } from 'zod';
import { delayBucket } from '../delay-bucket.js';
import { UnsupportedOperationError } from '../errors.js';
import { maxPriority } from '../job-options.js';
import type { ChildrenResults, JobCounts, JobInfo, JobRecord } from '../job-record.js';
import type {
  CancelOutcome,
  ExchangeRequest,
  ExchangeResponse,
  MaintenanceResult,
  ProviderCapabilities,
  QueueProvider,
  Settlement,
} from '../provider.js';
import { AckBatcher, type TrackedDelivery } from './ack-batcher.js';
import { decodeRecord, encodeRecord } from './record-codec.js';
import { Wakers } from './wakers.js';

/** Options of {@link RabbitMqProvider}. */
export const rabbitMqProviderOptionsSchema = z
  .object({
    /** AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672`. */
    url: z.string().min(1),
    /** Connection name shown by the broker (management UI, `rabbitmqctl list_connections`). */
    connectionName: z.string().min(1).optional(),
    /** First reconnect delay; doubles up to `maxReconnectDelayMs`. */
    reconnectDelayMs: z.number().int().positive().default(100),
    maxReconnectDelayMs: z.number().int().positive().default(5_000),
    /** Consumer prefetch; default: the worker's concurrency (its first fetch size). */
    prefetch: z.number().int().positive().optional(),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).default(silentLogger),
  })
  .strict();

/** Options of {@link RabbitMqProvider}. */
export type RabbitMqProviderOptions = z.input<typeof rabbitMqProviderOptionsSchema>;

/** Message properties by priority, built once (amqplib only reads them). */
const publishOptions = Array.from({ length: maxPriority + 1 }, (_, priority) =>
  Object.freeze({ persistent: true, priority, contentType: 'application/json' }),
);

const capabilities: ProviderCapabilities = {
  getJob: false,
  exactCounts: false,
  priorities: true,
  groups: false,
  flows: false,
  cancel: false,
  progress: false,
  dlqInspect: false,
  dedupe: false,
  leaseRecovery: false,
  globalPause: false,
};

interface Delivery {
  tracked: TrackedDelivery<ConsumeMessage>;
  acks: AckBatcher<ConsumeMessage>;
  generation: number;
}

/** Runs a batcher's flush at the end of the tick; a channel that died meanwhile was requeued by the broker. */
function endOfTick(flush: () => void): void {
  process.nextTick(() => {
    try {
      flush();
    } catch {
      // The channel closed: its unacknowledged deliveries are redelivered (at-least-once).
    }
  });
}

interface Consumer {
  wanted: boolean;
  paused: boolean;
  prefetch: number;
  channel?: Channel;
  tag?: string;
  starting?: Promise<void>;
  buffer: Delivery[];
  wakers: Wakers;
}

/**
 * The RabbitMQ provider (amqplib): durable priority queues, publisher confirms, manual acks,
 * prefetch = worker concurrency, delays through per-bucket TTL queues that dead-letter back
 * into the queue (no plugin), a dead-letter queue, and reconnect with backoff that re-declares
 * the topology and re-subscribes consumers. Job state that AMQP cannot answer (getJob, exact
 * counts, dedupe, flows, groups, cancel) is declared unsupported in `capabilities`.
 */
export class RabbitMqProvider implements QueueProvider {
  readonly name = 'rabbitmq';
  /** What this provider supports (also readable before constructing one). */
  static readonly capabilities: ProviderCapabilities = capabilities;
  readonly capabilities = capabilities;
  readonly #options: z.output<typeof rabbitMqProviderOptionsSchema>;
  readonly #logger: Logger;
  readonly connectionName: string;
  #model: ChannelModel | undefined;
  #publisher: ConfirmChannel | undefined;
  #generation = 0;
  #connecting: Promise<void> | undefined;
  #closed = false;
  readonly #declared = new Set<string>();
  readonly #delayQueues = new Map<string, Set<string>>();
  readonly #consumers = new Map<string, Consumer>();
  readonly #held = new Map<string, Delivery>();

  constructor(options: RabbitMqProviderOptions) {
    this.#options = parseOptions('RabbitMqProvider', rabbitMqProviderOptionsSchema, options);
    this.#logger = childLogger(this.#options.logger, { component: 'message-queue', provider: 'rabbitmq' });
    this.connectionName = this.#options.connectionName ?? `noa-mq-${randomBytes(4).toString('hex')}`;
  }

  /** Resolves with an open publisher channel, connecting (with backoff) if needed. */
  async #ready(): Promise<{ model: ChannelModel; publisher: ConfirmChannel }> {
    while (true) {
      if (this.#closed) throw new ClosedError('RabbitMqProvider');
      if (this.#model && this.#publisher) return { model: this.#model, publisher: this.#publisher };
      this.#connecting ??= this.#connect().finally(() => {
        this.#connecting = undefined;
      });
      await this.#connecting;
    }
  }

  async #connect(): Promise<void> {
    const amqp = await import('amqplib');
    let attempt = 0;
    while (!this.#closed) {
      try {
        const model = await amqp.connect(this.#options.url, {
          clientProperties: { connection_name: this.connectionName },
          // Acks and confirms are small writes: without this, Nagle + delayed ACK add ~40 ms tails.
          noDelay: true,
        });
        model.on('error', () => {});
        model.on('close', () => this.#lost(model));
        const publisher = await model.createConfirmChannel();
        publisher.on('error', () => {});
        publisher.on('close', () => this.#lost(model));
        this.#generation += 1;
        this.#declared.clear();
        this.#model = model;
        this.#publisher = publisher;
        if (attempt > 0) this.#logger.info('reconnected to RabbitMQ', { attempts: attempt });
        for (const [queue, consumer] of this.#consumers) {
          if (consumer.wanted && !consumer.paused) void this.#startConsumer(queue, consumer);
        }
        return;
      } catch (error) {
        attempt += 1;
        const wait = Math.min(
          this.#options.maxReconnectDelayMs,
          this.#options.reconnectDelayMs * 2 ** (attempt - 1),
        );
        this.#logger.warn('RabbitMQ connection failed; retrying', {
          attempt,
          waitMs: wait,
          error: error instanceof Error ? error.message : String(error),
        });
        // Unref'd, so a provider that is closed while reconnecting does not hold the process.
        await new Promise((resolve) => setTimeout(resolve, wait).unref());
      }
    }
  }

  /** The connection (or a channel of it) closed: forget it; deliveries are requeued by the broker. */
  #lost(model: ChannelModel): void {
    if (this.#model !== model) return;
    this.#model = undefined;
    this.#publisher = undefined;
    void model.close().catch(() => {});
    for (const consumer of this.#consumers.values()) {
      delete consumer.channel;
      delete consumer.tag;
      consumer.buffer = [];
    }
    this.#held.clear();
    if (!this.#closed) {
      this.#logger.warn('RabbitMQ connection lost; reconnecting');
      void this.#ready().catch(() => {});
    }
  }

  async #declare(queue: string): Promise<void> {
    if (this.#declared.has(queue)) return;
    const { publisher } = await this.#ready();
    await publisher.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-max-priority': maxPriority,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': `${queue}.dead`,
      },
    });
    await publisher.assertQueue(`${queue}.dead`, { durable: true });
    this.#declared.add(queue);
  }

  /** A TTL queue that dead-letters into `queue` after `delayMs` (rounded up to a bucket). */
  async #delayQueue(queue: string, delayMs: number): Promise<string> {
    const bucket = delayBucket(delayMs);
    const name = `${queue}.delay.${bucket}`;
    if (this.#declared.has(name)) return name;
    const { publisher } = await this.#ready();
    await publisher.assertQueue(name, {
      durable: true,
      arguments: {
        'x-message-ttl': bucket,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': queue,
        'x-expires': bucket + 60_000,
      },
    });
    this.#declared.add(name);
    let known = this.#delayQueues.get(queue);
    if (!known) {
      known = new Set();
      this.#delayQueues.set(queue, known);
    }
    known.add(name);
    return name;
  }

  /**
   * Publishes records (to the queue, a delay queue or the DLQ) and resolves once the broker has
   * confirmed every one of them. Each batch counts its own confirms through the per-message
   * callback (one shared function): `waitForConfirms` would wrap every message still unconfirmed
   * on the channel in a promise on each call, and make concurrent adds wait for each other.
   */
  async #publish(
    queue: string,
    items: { record: JobRecord; target: 'queue' | 'dead'; now: number }[],
  ): Promise<void> {
    if (items.length === 0) return;
    await this.#declare(queue);
    const routes: string[] = [];
    for (const { record, target, now } of items) {
      if (target === 'dead') routes.push(`${queue}.dead`);
      else if (record.availableAt > now) routes.push(await this.#delayQueue(queue, record.availableAt - now));
      else routes.push(queue);
    }
    const { publisher } = await this.#ready();
    await new Promise<void>((resolve, reject) => {
      let unconfirmed = items.length;
      let settled = false;
      const confirmed = (error: unknown) => {
        if (settled) return;
        if (error) {
          settled = true;
          reject(error instanceof Error ? error : new Error(String(error)));
        } else if (--unconfirmed === 0) {
          settled = true;
          resolve();
        }
      };
      for (let index = 0; index < items.length; index += 1) {
        const { record } = items[index]!;
        publisher.sendToQueue(
          routes[index]!,
          Buffer.from(encodeRecord(record)),
          publishOptions[record.priority] ?? { ...publishOptions[0], priority: record.priority },
          confirmed,
        );
      }
    });
  }

  async add(queue: string, records: JobRecord[], now: number): Promise<boolean[]> {
    await this.#publish(
      queue,
      records.map((record) => ({ record, target: 'queue' as const, now })),
    );
    return records.map(() => true);
  }

  async addFlow(): Promise<boolean> {
    throw new UnsupportedOperationError(this.name, 'flows');
  }

  #consumer(queue: string): Consumer {
    let consumer = this.#consumers.get(queue);
    if (!consumer) {
      consumer = { wanted: false, paused: false, prefetch: 0, buffer: [], wakers: new Wakers() };
      this.#consumers.set(queue, consumer);
    }
    return consumer;
  }

  async #startConsumer(queue: string, consumer: Consumer): Promise<void> {
    if (consumer.channel || consumer.starting || consumer.paused || this.#closed) return;
    consumer.starting = (async () => {
      try {
        await this.#declare(queue);
        const { model } = await this.#ready();
        const generation = this.#generation;
        const channel = await model.createChannel();
        channel.on('error', () => {});
        channel.on('close', () => this.#lost(model));
        await channel.prefetch(consumer.prefetch);
        const acks = new AckBatcher<ConsumeMessage>(channel, endOfTick);
        const { consumerTag } = await channel.consume(
          queue,
          (message) => {
            if (!message) return;
            consumer.buffer.push({ tracked: acks.track(message), acks, generation });
            consumer.wakers.wakeAll();
          },
          { noAck: false },
        );
        consumer.channel = channel;
        consumer.tag = consumerTag;
        if (consumer.paused) await this.#stopConsumer(consumer);
      } catch (error) {
        this.#logger.warn('could not start consumer', {
          queue,
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        delete consumer.starting;
      }
    })();
    await consumer.starting;
  }

  async #stopConsumer(consumer: Consumer): Promise<void> {
    const { channel, tag } = consumer;
    delete consumer.channel;
    delete consumer.tag;
    if (!channel) return;
    // Closing the channel returns its unacknowledged buffered deliveries to the queue.
    const buffered = consumer.buffer;
    consumer.buffer = [];
    try {
      if (tag) await channel.cancel(tag);
      for (const delivery of buffered) delivery.acks.nack(delivery.tracked, true);
    } catch {
      // The channel died already: the broker requeued them.
    }
  }

  #key(queue: string, id: string): string {
    return `${queue}\u0000${id}`;
  }

  /**
   * Forgets the held delivery of a job and returns it, unless its channel is gone (the broker
   * has requeued or redelivered it already: at-least-once).
   */
  #takeHeld(queue: string, id: string): Delivery | undefined {
    const key = this.#key(queue, id);
    const held = this.#held.get(key);
    this.#held.delete(key);
    return held?.generation === this.#generation ? held : undefined;
  }

  async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    const publishes: { record: JobRecord; target: 'queue' | 'dead'; now: number }[] = [];
    const acks: Delivery[] = [];
    for (const settlement of request.settle) {
      const held = this.#takeHeld(queue, settlement.record.id);
      if (!held) continue;
      if (settlement.kind === 'fail') {
        const record = { ...settlement.record };
        if (settlement.retryAt !== null) record.availableAt = settlement.retryAt;
        publishes.push({ record, target: settlement.retryAt === null ? 'dead' : 'queue', now: request.now });
      }
      acks.push(held);
    }
    if (publishes.length > 0) await this.#publish(queue, publishes);
    for (const held of acks) {
      if (held.generation === this.#generation) held.acks.ack(held.tracked);
    }
    const consumer = this.#consumer(queue);
    if (request.fetch > 0 && !consumer.wanted) {
      consumer.wanted = true;
      consumer.prefetch = this.#options.prefetch ?? request.fetch;
    }
    if (consumer.wanted && !consumer.channel && !consumer.paused) void this.#startConsumer(queue, consumer);
    const jobs: JobRecord[] = [];
    while (jobs.length < request.fetch && consumer.buffer.length > 0) {
      const delivery = consumer.buffer.shift()!;
      if (delivery.generation !== this.#generation) continue;
      const record = decodeRecord(delivery.tracked.message.content.toString());
      this.#held.set(this.#key(queue, record.id), delivery);
      jobs.push(record);
    }
    return { jobs };
  }

  /**
   * Acknowledges a completed delivery without waiting for the worker's next exchange, so the
   * prefetch window refills continuously; the acks of one tick go out as one `multiple` frame.
   */
  settleNow(queue: string, settlement: Settlement): boolean {
    if (settlement.kind !== 'complete') return false;
    const held = this.#takeHeld(queue, settlement.record.id);
    held?.acks.ack(held.tracked);
    return true;
  }

  async extendLeases(): Promise<void> {
    // The broker keeps a delivery until its channel closes: nothing to renew.
  }

  async release(queue: string, records: JobRecord[]): Promise<void> {
    for (const record of records) {
      const held = this.#takeHeld(queue, record.id);
      held?.acks.nack(held.tracked, true);
    }
  }

  async maintain(): Promise<MaintenanceResult> {
    // Redelivery of a dead consumer's jobs and DLQ expiry are the broker's job.
    return { recovered: 0, deadLettered: 0, removed: 0 };
  }

  waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const consumer = this.#consumer(queue);
    if (consumer.buffer.length > 0 || this.#closed) return Promise.resolve();
    return consumer.wakers.wait(timeoutMs, signal);
  }

  async getJob(): Promise<JobInfo | undefined> {
    throw new UnsupportedOperationError(this.name, 'getJob');
  }

  /** `waiting`, `failed` and `delayed` from passive declares; `active` is this process's deliveries only. */
  async counts(queue: string): Promise<JobCounts> {
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    const main = await publisher.checkQueue(queue);
    const dead = await publisher.checkQueue(`${queue}.dead`);
    let delayed = 0;
    for (const name of this.#delayQueues.get(queue) ?? []) {
      delayed += await publisher
        .checkQueue(name)
        .then((reply) => reply.messageCount)
        .catch(() => 0);
    }
    const consumer = this.#consumers.get(queue);
    let active = consumer?.buffer.length ?? 0;
    const prefix = `${queue}\u0000`;
    for (const key of this.#held.keys()) if (key.startsWith(prefix)) active += 1;
    return {
      waiting: main.messageCount,
      delayed,
      active,
      waitingChildren: 0,
      completed: 0,
      failed: dead.messageCount,
      paused: consumer?.paused ?? false,
    };
  }

  /** Stops this provider's consumers of the queue (other processes keep consuming). */
  async pause(queue: string): Promise<void> {
    const consumer = this.#consumer(queue);
    consumer.paused = true;
    await consumer.starting;
    await this.#stopConsumer(consumer);
  }

  async resume(queue: string): Promise<void> {
    const consumer = this.#consumer(queue);
    consumer.paused = false;
    if (consumer.wanted) await this.#startConsumer(queue, consumer);
  }

  async drain(queue: string, includeDelayed: boolean): Promise<number> {
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    let removed = (await publisher.purgeQueue(queue)).messageCount;
    if (includeDelayed) {
      for (const name of this.#delayQueues.get(queue) ?? []) {
        removed += await publisher
          .purgeQueue(name)
          .then((reply) => reply.messageCount)
          .catch(() => 0);
      }
    }
    return removed;
  }

  async setProgress(): Promise<void> {
    // Not stored: AMQP has nowhere to keep it (progress events are still published locally).
  }

  async cancel(): Promise<CancelOutcome> {
    throw new UnsupportedOperationError(this.name, 'cancel');
  }

  async onCancel(): Promise<() => void> {
    return () => {};
  }

  async childrenResults(): Promise<ChildrenResults> {
    throw new UnsupportedOperationError(this.name, 'flows');
  }

  async listDead(): Promise<JobInfo[]> {
    throw new UnsupportedOperationError(this.name, 'dlq.list');
  }

  /** Redrives the whole DLQ (by id is unsupported: AMQP cannot select a message). */
  async redrive(queue: string, ids: string[] | undefined, now: number): Promise<number> {
    if (ids !== undefined) throw new UnsupportedOperationError(this.name, 'dlq.retry(id)');
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    let moved = 0;
    while (true) {
      const message = await publisher.get(`${queue}.dead`, { noAck: false });
      if (!message) return moved;
      const record = decodeRecord(message.content.toString());
      await this.#publish(queue, [
        { record: { ...record, attemptsMade: 0, availableAt: now }, target: 'queue', now },
      ]);
      publisher.ack(message);
      moved += 1;
    }
  }

  async purgeDead(queue: string, ids: string[] | undefined): Promise<number> {
    if (ids !== undefined) throw new UnsupportedOperationError(this.name, 'dlq.purge(ids)');
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    return (await publisher.purgeQueue(`${queue}.dead`)).messageCount;
  }

  /** Deletes the queue, its DLQ and its delay queues (for tests and teardown). */
  async deleteQueue(queue: string): Promise<void> {
    const { publisher } = await this.#ready();
    for (const name of [queue, `${queue}.dead`, ...(this.#delayQueues.get(queue) ?? [])]) {
      await publisher.deleteQueue(name).catch(() => undefined);
    }
    this.#declared.delete(queue);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const consumer of this.#consumers.values()) {
      consumer.wakers.wakeAll();
    }
    const model = this.#model;
    this.#model = undefined;
    this.#publisher = undefined;
    await model?.close().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
