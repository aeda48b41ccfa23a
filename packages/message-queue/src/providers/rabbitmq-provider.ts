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
  RetentionPolicy,
  Settlement,
} from '../provider.js';
import { AckBatcher, type TrackedDelivery } from './ack-batcher.js';
import { type BufferedGroup, pickBufferedGroup } from './buffered-group-pick.js';
import type { JobStateStore, StateEvent, StatePublish } from './job-state-store.js';
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
    /**
     * Where job state lives (e.g. a `RedisJobStateStore`): enables dedupe, getJob, exact counts,
     * progress, cancel, flows, groups, lease recovery, DLQ by id and global pause. Closed with
     * the provider.
     */
    state: z
      .custom<JobStateStore>(
        (value) => typeof value === 'object' && value !== null && 'exchange' in value && 'subscribe' in value,
        { message: 'expected a JobStateStore (e.g. RedisJobStateStore)' },
      )
      .optional(),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).default(silentLogger),
  })
  .strict();

/** Options of {@link RabbitMqProvider}. */
export type RabbitMqProviderOptions = z.input<typeof rabbitMqProviderOptionsSchema>;

/** Message properties by priority, built once (amqplib only reads them). */
const publishOptions = Array.from({ length: maxPriority + 1 }, (_, priority) =>
  Object.freeze({ persistent: true, priority, contentType: 'application/json' }),
);

/** The header carrying a message's state token (see `JobStateStore`). */
const tokenHeader = 'x-noa-token';

/** How long the first fetch of a new consumer waits for the broker's first push. */
const firstDeliveryWaitMs = 50;

/** How often a consumer stopped by a global pause re-reads the flag (in case a resume was missed). */
const pauseRecheckMs = 1_000;

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

const stateCapabilities: ProviderCapabilities = {
  getJob: true,
  exactCounts: true,
  priorities: true,
  groups: true,
  flows: true,
  cancel: true,
  progress: true,
  dlqInspect: true,
  dedupe: true,
  leaseRecovery: true,
  globalPause: true,
};

/** The state token of a delivered message (1: published before any retry). */
function tokenOf(message: ConsumeMessage): number {
  const token = Number(message.properties.headers?.[tokenHeader]);
  return Number.isFinite(token) ? token : 1;
}

const neverAborted = new AbortController().signal;

/**
 * With a state store, each job group has its own queue. Its prefetch must cover what the group
 * can have unacknowledged (running, leased ahead, settling) plus a whole fetch, so a backlogged
 * group's buffer is never empty at a pick (fair dispatch needs every backlogged group to be a
 * candidate each time): three times the largest fetch of a worker of that concurrency
 * (`concurrency + max(concurrency, 16)`).
 */
function groupPrefetch(prefetch: number): number {
  return 3 * (prefetch + Math.max(prefetch, 16));
}

/**
 * When a consumer (re)starts with job groups, the first pick waits up to this long for every
 * group queue's first push, so a group whose consumer started a moment later is not skipped.
 */
const groupStartWaitMs = 25;

/** How old a group queue's ready count may be before it is read again. */
const backlogReadMs = 50;

/** The broker queue of a job group (with a state store). */
function groupQueueName(queue: string, group: string): string {
  return `${queue}.group.${group}`;
}

interface Delivery {
  tracked: TrackedDelivery<ConsumeMessage>;
  acks: AckBatcher<ConsumeMessage>;
  generation: number;
  /** The job group whose queue it came from (with a state store). */
  group?: string;
  /** Its group's count of deliveries not yet acknowledged or rejected (see `settled`). */
  outstanding?: { count: number };
}

/** A delivery is being acknowledged or rejected: its group has one outstanding fewer. */
function settled(delivery: Delivery): void {
  if (delivery.outstanding) delivery.outstanding.count -= 1;
  delete delivery.outstanding;
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
  /** With a state store: listening to the queue's events (cancel, pause, resume). */
  watching?: Promise<void>;
  /** With a state store: when the pause flag was last read while paused. */
  pauseCheckedAt?: number;
  /** With a state store: the channel's ack batcher (shared by the group consumers). */
  acks?: AckBatcher<ConsumeMessage>;
  /** With a state store: deliveries of each job group's queue, and its consumer tag. */
  groupBuffers: Map<string, Delivery[]>;
  groupTags: Map<string, string>;
  /** Smooth weighted round robin credits of the groups (this process's share of fairness). */
  credits: Map<string, number>;
  /** Ready messages of each group queue in the broker, as last read (see `#brokerBacklog`). */
  backlog: Map<string, { count: number; readAt: number; reading: boolean }>;
  /** Deliveries of each group not yet acknowledged or rejected (their prefetch window). */
  outstanding: Map<string, { count: number }>;
  /** A fetch stopped to wait for a group's next push: `waitForWork` waits for a delivery. */
  awaitingPush: boolean;
}

/**
 * The RabbitMQ provider (amqplib): durable priority queues, publisher confirms, manual acks,
 * prefetch = worker concurrency, delays through per-bucket TTL queues that dead-letter back
 * into the queue (no plugin), a dead-letter queue, and reconnect with backoff that re-declares
 * the topology and re-subscribes consumers. Job state that AMQP cannot answer (getJob, exact
 * counts, dedupe, flows, groups, cancel, progress, lease recovery, DLQ by id, global pause)
 * needs a `state` store beside the broker (AMQP stays the transport); without one it is
 * declared unsupported in `capabilities`.
 */
export class RabbitMqProvider implements QueueProvider {
  readonly name = 'rabbitmq';
  /** What this provider supports without a `state` store (also readable before constructing one). */
  static readonly capabilities: ProviderCapabilities = capabilities;
  /** What this provider supports with a `state` store. */
  static readonly stateCapabilities: ProviderCapabilities = stateCapabilities;
  /** What this instance supports (depends on the `state` option). */
  readonly capabilities: ProviderCapabilities;
  readonly #options: z.output<typeof rabbitMqProviderOptionsSchema>;
  readonly #state: JobStateStore | undefined;
  readonly #logger: Logger;
  readonly connectionName: string;
  #model: ChannelModel | undefined;
  #publisher: ConfirmChannel | undefined;
  #generation = 0;
  #connecting: Promise<void> | undefined;
  #closed = false;
  readonly #declared = new Set<string>();
  readonly #delayQueues = new Map<string, Set<string>>();
  readonly #groupQueues = new Map<string, Set<string>>();
  readonly #consumers = new Map<string, Consumer>();
  readonly #held = new Map<string, Delivery>();

  constructor(options: RabbitMqProviderOptions) {
    this.#options = parseOptions('RabbitMqProvider', rabbitMqProviderOptionsSchema, options);
    this.#logger = childLogger(this.#options.logger, { component: 'message-queue', provider: 'rabbitmq' });
    this.connectionName = this.#options.connectionName ?? `noa-mq-${randomBytes(4).toString('hex')}`;
    this.#state = this.#options.state;
    this.capabilities = this.#state ? stateCapabilities : capabilities;
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
      consumer.groupBuffers.clear();
      consumer.groupTags.clear();
      consumer.outstanding.clear();
    }
    // With a state store, deliveries held from the dead channel stay known (their settlements
    // are still stored), so their redeliveries here are not run twice in this process.
    if (!this.#state) this.#held.clear();
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

  /** A job group's queue (with a state store): priorities like the main queue. */
  async #declareGroup(queue: string, group: string): Promise<string> {
    const name = groupQueueName(queue, group);
    if (this.#declared.has(name)) return name;
    const { publisher } = await this.#ready();
    await publisher.assertQueue(name, { durable: true, arguments: { 'x-max-priority': maxPriority } });
    this.#declared.add(name);
    let known = this.#groupQueues.get(queue);
    if (!known) {
      known = new Set();
      this.#groupQueues.set(queue, known);
    }
    known.add(name);
    return name;
  }

  /**
   * A TTL queue that dead-letters into `target` (the queue, or a group's queue) after `delayMs`
   * (rounded up to a bucket).
   */
  async #delayQueue(queue: string, delayMs: number, target = queue): Promise<string> {
    const bucket = delayBucket(delayMs);
    const name = `${target}.delay.${bucket}`;
    if (this.#declared.has(name)) return name;
    const { publisher } = await this.#ready();
    await publisher.assertQueue(name, {
      durable: true,
      arguments: {
        'x-message-ttl': bucket,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': target,
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
    items: { record: JobRecord; target: 'queue' | 'dead'; now: number; token?: number }[],
  ): Promise<void> {
    if (items.length === 0) return;
    await this.#declare(queue);
    const routes: string[] = [];
    for (const { record, target, now } of items) {
      // Without a state store groups are not supported: grouped jobs share the queue.
      const base =
        record.group !== undefined && this.#state ? await this.#declareGroup(queue, record.group) : queue;
      if (target === 'dead') routes.push(`${queue}.dead`);
      else if (record.availableAt > now)
        routes.push(await this.#delayQueue(queue, record.availableAt - now, base));
      else routes.push(base);
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
        const { record, token } = items[index]!;
        const options = publishOptions[record.priority] ?? {
          ...publishOptions[0],
          priority: record.priority,
        };
        publisher.sendToQueue(
          routes[index]!,
          Buffer.from(encodeRecord(record)),
          token === undefined ? options : { ...options, headers: { [tokenHeader]: token } },
          confirmed,
        );
      }
    });
  }

  /**
   * Publishes what the state store asked for (retries, recoveries, redrives, released flow
   * parents). A failure is logged, not thrown: the entries stay in the store's outbox and the
   * next maintenance pass after `outboxTimeoutMs` publishes them again.
   */
  async #publishForState(
    queue: string,
    state: JobStateStore,
    items: StatePublish[],
    now: number,
  ): Promise<void> {
    if (items.length === 0) return;
    try {
      await this.#publish(
        queue,
        items.map(({ record, token }) => ({ record, target: 'queue' as const, now, token })),
      );
    } catch (error) {
      this.#logger.warn('publish failed; the state outbox will republish', {
        queue,
        jobs: items.length,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    this.#confirm(queue, state, items);
  }

  /** Takes confirmed messages off the outbox, off the caller's path (a lost confirm only republishes). */
  #confirm(queue: string, state: JobStateStore, items: StatePublish[]): void {
    state
      .confirm(
        queue,
        items.map(({ record, token }) => ({ id: record.id, token })),
      )
      .catch((error: unknown) =>
        this.#logger.debug('outbox confirm failed', {
          queue,
          error: error instanceof Error ? error.message : String(error),
        }),
      );
  }

  /** Claims the ids in the store, publishes the claimed ones, and releases the claims if that fails. */
  async #addWithState(
    state: JobStateStore,
    queue: string,
    records: JobRecord[],
    now: number,
  ): Promise<boolean[]> {
    const claimed = await state.add(queue, records, now);
    const fresh: StatePublish[] = [];
    for (const [index, record] of records.entries()) if (claimed[index]) fresh.push({ record, token: 1 });
    await this.#publishClaimed(state, queue, fresh, now);
    return claimed;
  }

  async #publishClaimed(
    state: JobStateStore,
    queue: string,
    fresh: StatePublish[],
    now: number,
  ): Promise<void> {
    try {
      await this.#publish(
        queue,
        fresh.map(({ record, token }) => ({ record, target: 'queue' as const, now, token })),
      );
    } catch (error) {
      await state
        .unclaim(
          queue,
          fresh.map(({ record, token }) => ({ id: record.id, token })),
        )
        .catch(() => {
          // Left claimed: the outbox publishes them after `outboxTimeoutMs` (the add may still succeed).
        });
      throw error;
    }
    this.#confirm(queue, state, fresh);
  }

  async add(queue: string, records: JobRecord[], now: number): Promise<boolean[]> {
    if (this.#state) return this.#addWithState(this.#state, queue, records, now);
    await this.#publish(
      queue,
      records.map((record) => ({ record, target: 'queue' as const, now })),
    );
    return records.map(() => true);
  }

  async addFlow(queue: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean> {
    const state = this.#state;
    if (!state) throw new UnsupportedOperationError(this.name, 'flows');
    if (!(await state.addFlow(queue, parent, children, now))) return false;
    const fresh =
      children.length === 0
        ? [{ record: parent, token: 1 }]
        : children.map((record) => ({ record, token: 1 }));
    try {
      await this.#publishClaimed(state, queue, fresh, now);
    } catch (error) {
      await state.unclaim(queue, [{ id: parent.id, token: 0 }]).catch(() => {});
      throw error;
    }
    return true;
  }

  #consumer(queue: string): Consumer {
    let consumer = this.#consumers.get(queue);
    if (!consumer) {
      consumer = {
        wanted: false,
        paused: false,
        prefetch: 0,
        buffer: [],
        wakers: new Wakers(),
        groupBuffers: new Map(),
        groupTags: new Map(),
        credits: new Map(),
        backlog: new Map(),
        outstanding: new Map(),
        awaitingPush: false,
      };
      this.#consumers.set(queue, consumer);
    }
    return consumer;
  }

  /** With a state store: follows the queue's pause/resume from every process (once per queue). */
  #watch(queue: string, consumer: Consumer, state: JobStateStore): Promise<void> {
    consumer.watching ??= state
      .subscribe(queue, (event) => this.#onStateEvent(queue, consumer, event))
      .then(() => undefined);
    return consumer.watching;
  }

  #onStateEvent(queue: string, consumer: Consumer, event: StateEvent): void {
    if (event.type === 'group') void this.#consumeGroup(queue, consumer, event.group);
    else if (event.type === 'pause') void this.#pauseLocally(consumer);
    else if (event.type === 'resume') {
      consumer.paused = false;
      if (consumer.wanted) void this.#startConsumer(queue, consumer);
    }
  }

  async #pauseLocally(consumer: Consumer): Promise<void> {
    consumer.paused = true;
    consumer.pauseCheckedAt = Date.now();
    await consumer.starting;
    await this.#stopConsumer(consumer);
  }

  async #startConsumer(queue: string, consumer: Consumer): Promise<void> {
    if (consumer.channel || consumer.starting || consumer.paused || this.#closed) return;
    consumer.starting = (async () => {
      try {
        const state = this.#state;
        if (state) {
          // Subscribed before the flag is read, so a pause published meanwhile is not missed.
          await this.#watch(queue, consumer, state);
          if (await state.isPaused(queue)) {
            consumer.paused = true;
            consumer.pauseCheckedAt = Date.now();
            return;
          }
        }
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
        consumer.acks = acks;
        if (state) {
          // basic.qos (per consumer) applies to the consumers started after it: the group queues.
          await channel.prefetch(groupPrefetch(consumer.prefetch));
          const groups = await state.groups(queue);
          await Promise.all(groups.map((group) => this.#consumeGroup(queue, consumer, group)));
          await Promise.all(groups.map((group) => this.#readBacklog(queue, consumer, group)));
          const deadline = Date.now() + groupStartWaitMs;
          while (
            Date.now() < deadline &&
            groups.some(
              (group) =>
                (consumer.groupBuffers.get(group)?.length ?? 0) === 0 &&
                (consumer.backlog.get(group)?.count ?? 0) > 0,
            )
          ) {
            await consumer.wakers.wait(Math.max(1, deadline - Date.now()), neverAborted);
          }
        }
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

  /** With a state store: consumes a job group's queue on the consumer's channel (once). */
  async #consumeGroup(queue: string, consumer: Consumer, group: string): Promise<void> {
    const { channel, acks } = consumer;
    if (!channel || !acks || consumer.groupTags.has(group)) return;
    consumer.groupTags.set(group, '');
    const generation = this.#generation;
    try {
      const name = await this.#declareGroup(queue, group);
      const { consumerTag } = await channel.consume(
        name,
        (message) => {
          if (!message) return;
          let buffer = consumer.groupBuffers.get(group);
          if (!buffer) {
            buffer = [];
            consumer.groupBuffers.set(group, buffer);
          }
          let outstanding = consumer.outstanding.get(group);
          if (!outstanding) {
            outstanding = { count: 0 };
            consumer.outstanding.set(group, outstanding);
          }
          outstanding.count += 1;
          buffer.push({ tracked: acks.track(message), acks, generation, group, outstanding });
          consumer.wakers.wakeAll();
        },
        { noAck: false },
      );
      if (consumer.channel === channel) consumer.groupTags.set(group, consumerTag);
    } catch (error) {
      if (consumer.channel === channel) consumer.groupTags.delete(group);
      this.#logger.warn('could not consume a job group', {
        queue,
        group,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** Every buffered delivery of the consumer (the queue's and its groups'), emptied. */
  #takeBuffered(consumer: Consumer): Delivery[] {
    const all = consumer.buffer;
    consumer.buffer = [];
    for (const buffer of consumer.groupBuffers.values()) all.push(...buffer);
    consumer.groupBuffers.clear();
    return all;
  }

  async #stopConsumer(consumer: Consumer): Promise<void> {
    const { channel, tag } = consumer;
    delete consumer.channel;
    delete consumer.tag;
    if (!channel) return;
    // Closing the channel returns its unacknowledged buffered deliveries to the queue.
    const buffered = this.#takeBuffered(consumer);
    const groupTags = [...consumer.groupTags.values()];
    consumer.groupTags.clear();
    try {
      if (tag) await channel.cancel(tag);
      for (const groupTag of groupTags) if (groupTag) await channel.cancel(groupTag);
      for (const delivery of buffered) {
        settled(delivery);
        delivery.acks.nack(delivery.tracked, true);
      }
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

  /**
   * With a state store: one store call settles the finished tries and judges the deliveries
   * taken from the consumer's buffer (run, drop or requeue); then retries are published and
   * settled deliveries acknowledged. A settlement is stored even when its delivery is gone
   * (connection lost): the redelivered message is then dropped instead of run again.
   */
  async #exchangeWithState(
    state: JobStateStore,
    queue: string,
    request: ExchangeRequest,
  ): Promise<ExchangeResponse> {
    const consumer = this.#consumer(queue);
    const coldStart = request.fetch > 0 && !consumer.wanted;
    if (coldStart) {
      consumer.wanted = true;
      consumer.prefetch = this.#options.prefetch ?? request.fetch;
    }
    if (consumer.paused && consumer.wanted && Date.now() - (consumer.pauseCheckedAt ?? 0) >= pauseRecheckMs) {
      consumer.pauseCheckedAt = Date.now();
      if (!(await state.isPaused(queue))) consumer.paused = false;
    }
    if (consumer.paused) consumer.pauseCheckedAt ??= Date.now();
    if (consumer.wanted && !consumer.channel && !consumer.paused) {
      const starting = this.#startConsumer(queue, consumer);
      if (coldStart) {
        // The first fetch of a consumer waits for the subscription and the broker's first push.
        await starting;
        if (consumer.buffer.length === 0) await consumer.wakers.wait(firstDeliveryWaitMs, neverAborted);
      }
    }
    // A consumer (re)starting its group queues: pick once they all deliver (fair from the start).
    if (consumer.starting) await consumer.starting;
    const taken: { delivery: Delivery; record: JobRecord; token: number; orphaned: boolean }[] = [];
    const weightOf = (group: string) => request.groupWeights[group] ?? request.defaultGroupWeight;
    while (taken.length < request.fetch) {
      const delivery = this.#nextDelivery(queue, consumer, weightOf);
      if (!delivery) break;
      if (delivery.generation !== this.#generation) continue;
      const { message } = delivery.tracked;
      const record = decodeRecord(message.content.toString());
      // Held here from before a reconnect: our worker still runs it and will store its outcome.
      const orphaned = message.fields.redelivered && !this.#held.has(this.#key(queue, record.id));
      taken.push({ delivery, record, token: tokenOf(message), orphaned });
    }
    if (request.settle.length === 0 && taken.length === 0) return { jobs: [] };
    let result: Awaited<ReturnType<JobStateStore['exchange']>>;
    try {
      result = await state.exchange(queue, {
        settle: request.settle,
        deliveries: taken.map(({ record, token, orphaned }) => ({ id: record.id, token, orphaned })),
        now: request.now,
        leaseUntil: request.leaseUntil,
      });
    } catch (error) {
      for (const { delivery } of taken.reverse()) {
        const buffer =
          delivery.group === undefined ? consumer.buffer : consumer.groupBuffers.get(delivery.group);
        if (buffer) buffer.unshift(delivery);
        else consumer.groupBuffers.set(delivery.group!, [delivery]);
      }
      throw error;
    }
    await this.#publishForState(queue, state, result.publish, request.now);
    for (const settlement of request.settle) {
      const held = this.#takeHeld(queue, settlement.record.id);
      if (!held) continue;
      settled(held);
      held.acks.ack(held.tracked);
    }
    const jobs: JobRecord[] = [];
    let paused = false;
    for (const [index, { delivery, record }] of taken.entries()) {
      if (delivery.generation !== this.#generation) continue;
      const verdict = result.verdicts[index] ?? 'drop';
      if (verdict === 'run') {
        const key = this.#key(queue, record.id);
        const previous = this.#held.get(key);
        if (previous && previous.generation === this.#generation) {
          // A stalled run here whose job the store requeued with this newer message: the old
          // delivery would otherwise hold its prefetch slot until the channel closes.
          settled(previous);
          previous.acks.ack(previous.tracked);
        }
        this.#held.set(key, delivery);
        jobs.push(record);
      } else if (verdict === 'requeue') {
        paused = true;
        settled(delivery);
        delivery.acks.nack(delivery.tracked, true);
      } else {
        this.#logger.debug('delivery dropped by the state store', { queue, id: record.id });
        settled(delivery);
        delivery.acks.ack(delivery.tracked);
      }
    }
    if (paused) await this.#pauseLocally(consumer);
    return { jobs };
  }

  /**
   * The next buffered delivery: the queue's own in order, or, with job groups, one of the
   * backlogged groups (ungrouped jobs are the group `''`) by smooth weighted round robin with
   * this consumer's credits. A group whose buffer is empty but whose broker queue has ready
   * messages is still a candidate: when it is picked, the fetch stops there (its credit kept)
   * rather than give its turn away while the broker's push catches up, so weights hold even
   * when the broker delivers slower than the workers consume.
   */
  #nextDelivery(
    queue: string,
    consumer: Consumer,
    weightOf: (group: string) => number,
  ): Delivery | undefined {
    if (consumer.groupTags.size === 0) return consumer.buffer.shift();
    const window = groupPrefetch(consumer.prefetch);
    const groups = new Map<string, BufferedGroup>();
    for (const group of consumer.groupTags.keys()) {
      const buffered = consumer.groupBuffers.get(group)?.length ?? 0;
      const coming =
        buffered === 0 &&
        (consumer.outstanding.get(group)?.count ?? 0) < window &&
        this.#brokerBacklog(queue, consumer, group) > 0;
      groups.set(group, { buffered, coming });
    }
    if (consumer.buffer.length > 0) groups.set('', { buffered: consumer.buffer.length, coming: false });
    const pick = pickBufferedGroup(groups, weightOf, consumer.credits);
    if (!pick) return undefined;
    if ('wait' in pick) {
      consumer.awaitingPush = true;
      return undefined;
    }
    return pick.take === '' ? consumer.buffer.shift() : consumer.groupBuffers.get(pick.take)!.shift();
  }

  /** The last read ready count of a group queue; reads it again (in the background) when stale. */
  #brokerBacklog(queue: string, consumer: Consumer, group: string): number {
    const entry = consumer.backlog.get(group);
    if (!entry || (!entry.reading && Date.now() - entry.readAt >= backlogReadMs)) {
      void this.#readBacklog(queue, consumer, group);
    }
    return entry?.count ?? 0;
  }

  /** Reads a group queue's ready count (an idempotent declare with its arguments carries it). */
  async #readBacklog(queue: string, consumer: Consumer, group: string): Promise<void> {
    let entry = consumer.backlog.get(group);
    if (!entry) {
      entry = { count: 0, readAt: 0, reading: false };
      consumer.backlog.set(group, entry);
    }
    if (entry.reading) return;
    entry.reading = true;
    try {
      const { publisher } = await this.#ready();
      const reply = await publisher.assertQueue(groupQueueName(queue, group), {
        durable: true,
        arguments: { 'x-max-priority': maxPriority },
      });
      entry.count = reply.messageCount;
    } catch {
      entry.count = 0;
    } finally {
      entry.reading = false;
      entry.readAt = Date.now();
    }
  }

  async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    if (this.#state) return this.#exchangeWithState(this.#state, queue, request);
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
    // With a state store the outcome is stored first (batched in the next exchange), then acked.
    if (settlement.kind !== 'complete' || this.#state) return false;
    const held = this.#takeHeld(queue, settlement.record.id);
    held?.acks.ack(held.tracked);
    return true;
  }

  async extendLeases(queue: string, ids: string[], leaseUntil: number): Promise<void> {
    // Without a store the broker keeps a delivery until its channel closes: nothing to renew.
    await this.#state?.extendLeases(queue, ids, leaseUntil);
  }

  async release(queue: string, records: JobRecord[], now: number): Promise<void> {
    try {
      // Back to queued in the store first, so the requeued message is not judged a duplicate.
      await this.#state?.release(
        queue,
        records.map((record) => record.id),
        now,
      );
    } finally {
      for (const record of records) {
        const held = this.#takeHeld(queue, record.id);
        if (!held) continue;
        settled(held);
        held.acks.nack(held.tracked, true);
      }
    }
  }

  async maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult> {
    const state = this.#state;
    // Without a store, redelivery of a dead consumer's jobs and DLQ expiry are the broker's job.
    if (!state) return { recovered: 0, deadLettered: 0, removed: 0 };
    const { publish, ...result } = await state.maintain(queue, now, maxStalls, retention);
    for (const { record } of publish) {
      // A stale delivery held here would hold a prefetch slot forever: its job has a new message.
      const held = this.#takeHeld(queue, record.id);
      if (!held) continue;
      settled(held);
      held.acks.ack(held.tracked);
    }
    await this.#publishForState(queue, state, publish, now);
    return result;
  }

  waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const consumer = this.#consumer(queue);
    if (this.#closed) return Promise.resolve();
    if (consumer.awaitingPush) {
      // The last fetch stopped for a group's next push: wait for a delivery (briefly), not spin.
      consumer.awaitingPush = false;
      return consumer.wakers.wait(Math.min(timeoutMs, backlogReadMs), signal);
    }
    if (consumer.buffer.length > 0) return Promise.resolve();
    for (const buffer of consumer.groupBuffers.values()) if (buffer.length > 0) return Promise.resolve();
    return consumer.wakers.wait(timeoutMs, signal);
  }

  async getJob(queue: string, id: string): Promise<JobInfo | undefined> {
    if (!this.#state) throw new UnsupportedOperationError(this.name, 'getJob');
    return this.#state.getJob(queue, id, Date.now());
  }

  /**
   * Exact, from the state store. Without one: `waiting`, `failed` and `delayed` from passive
   * declares; `active` is this process's deliveries only.
   */
  async counts(queue: string): Promise<JobCounts> {
    if (this.#state) return this.#state.counts(queue, Date.now());
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

  /**
   * Stops the queue's consumers: with a state store in every process (the flag is stored and
   * broadcast), else this provider's only (other processes keep consuming).
   */
  async pause(queue: string): Promise<void> {
    await this.#state?.pause(queue);
    await this.#pauseLocally(this.#consumer(queue));
  }

  async resume(queue: string): Promise<void> {
    await this.#state?.resume(queue);
    const consumer = this.#consumer(queue);
    consumer.paused = false;
    if (consumer.wanted) await this.#startConsumer(queue, consumer);
  }

  /** With a state store the count is the store's (messages left in delay buckets are dropped when due). */
  async drain(queue: string, includeDelayed: boolean): Promise<number> {
    const forgotten = await this.#state?.drain(queue, includeDelayed, Date.now());
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    let removed = (await publisher.purgeQueue(queue)).messageCount;
    for (const name of await this.#groupQueueNames(queue)) {
      await publisher.purgeQueue(name).catch(() => undefined);
    }
    if (includeDelayed) {
      for (const name of this.#delayQueues.get(queue) ?? []) {
        removed += await publisher
          .purgeQueue(name)
          .then((reply) => reply.messageCount)
          .catch(() => 0);
      }
    }
    return forgotten ?? removed;
  }

  async setProgress(queue: string, id: string, progress: unknown): Promise<void> {
    // Without a store it is not stored: AMQP has nowhere to keep it (progress events are still published locally).
    await this.#state?.setProgress(queue, id, progress);
  }

  async cancel(queue: string, id: string, now: number): Promise<CancelOutcome> {
    const state = this.#state;
    if (!state) throw new UnsupportedOperationError(this.name, 'cancel');
    const { outcome, publish } = await state.cancel(queue, id, now);
    // A flow parent released by the cancelled child (policy `ignore` or `continue`).
    await this.#publishForState(queue, state, publish, now);
    return outcome;
  }

  async onCancel(queue: string, listener: (id: string) => void): Promise<() => void> {
    if (!this.#state) return () => {};
    return this.#state.subscribe(queue, (event) => {
      if (event.type === 'cancel') listener(event.id);
    });
  }

  async childrenResults(queue: string, parentId: string): Promise<ChildrenResults> {
    if (!this.#state) throw new UnsupportedOperationError(this.name, 'flows');
    return this.#state.childrenResults(queue, parentId);
  }

  async listDead(queue: string, offset: number, limit: number): Promise<JobInfo[]> {
    if (!this.#state) throw new UnsupportedOperationError(this.name, 'dlq.list');
    return this.#state.listDead(queue, offset, limit, Date.now());
  }

  /** Redrives dead jobs; without a state store only the whole DLQ (AMQP cannot select a message). */
  async redrive(queue: string, ids: string[] | undefined, now: number): Promise<number> {
    const state = this.#state;
    if (state) {
      const publish = await state.redrive(queue, ids, now);
      await this.#publishForState(queue, state, publish, now);
      return publish.length;
    }
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
    if (this.#state) return this.#state.purgeDead(queue, ids);
    if (ids !== undefined) throw new UnsupportedOperationError(this.name, 'dlq.purge(ids)');
    await this.#declare(queue);
    const { publisher } = await this.#ready();
    return (await publisher.purgeQueue(`${queue}.dead`)).messageCount;
  }

  /** The job group queues of a queue: those the store has seen and those declared here. */
  async #groupQueueNames(queue: string): Promise<string[]> {
    const names = new Set(this.#groupQueues.get(queue));
    for (const group of (await this.#state?.groups(queue)) ?? []) names.add(groupQueueName(queue, group));
    return [...names];
  }

  /** Deletes the queue, its DLQ, its delay queues and its group queues (for tests and teardown). */
  async deleteQueue(queue: string): Promise<void> {
    const { publisher } = await this.#ready();
    const groupQueues = await this.#groupQueueNames(queue);
    for (const name of [queue, `${queue}.dead`, ...(this.#delayQueues.get(queue) ?? []), ...groupQueues]) {
      await publisher.deleteQueue(name).catch(() => undefined);
      this.#declared.delete(name);
    }
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
    await this.#state?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
