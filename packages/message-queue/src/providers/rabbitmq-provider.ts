import { randomBytes } from 'node:crypto';
import {
  ClosedError,
  childLogger,
  type Logger,
  maxTimerMs,
  parseOptions,
  silentLogger,
  TimeoutError,
  withDeadline,
} from '@noa/core';
import type { GetMessage } from 'amqplib';
import { z } from 'zod';
import { BrokerUnavailableError, UnsupportedOperationError } from '../errors.js';
import type { ChildrenResults, JobCounts, JobInfo, JobRecord } from '../job-record.js';
import {
  allCapabilities,
  type CancelResult,
  type ExchangeRequest,
  type ExchangeResponse,
  type LeasedJob,
  type LeaseRenewal,
  type MaintenanceResult,
  type ProviderCapabilities,
  type QueueProvider,
  type RetentionPolicy,
  type Settlement,
  type StalledRelease,
  type StalledReleaseResult,
} from '../provider.js';
import { deliveredFrom, withDeliveredData } from './delivered-data.js';
import type { JobStateStore } from './job-state-store.js';
import { AmqpConnection } from './rabbitmq/connection.js';
import { RabbitConsumers } from './rabbitmq/consumers.js';
import { type Delivery, HeldDeliveries, rejectUndecodable, settled } from './rabbitmq/deliveries.js';
import { type PublishItem, RabbitPublisher } from './rabbitmq/publisher.js';
import {
  type RememberedOutcome,
  RememberedOutcomes,
  rememberOutcomesMs,
} from './rabbitmq/remembered-outcomes.js';
import { StateBridge } from './rabbitmq/state-bridge.js';
import { deadQueueName, defaultDelayQueueIdleMs, groupQueueName, Topology } from './rabbitmq/topology.js';
import { decodeMessage } from './record-codec.js';

/** Options of {@link RabbitMqProvider}. */
export const rabbitMqProviderOptionsSchema = z
  .object({
    /** AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672`. */
    url: z
      .string()
      .min(1)
      .regex(/^amqps?:\/\//i, 'must be an amqp:// or amqps:// URL'),
    /** Connection name shown by the broker (management UI, `rabbitmqctl list_connections`). */
    connectionName: z.string().min(1).optional(),
    /** First reconnect delay; doubles up to `maxReconnectDelayMs`. */
    reconnectDelayMs: z.number().int().positive().max(maxTimerMs).default(100),
    maxReconnectDelayMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /** Per connection attempt: a host that drops packets counts as failed after this long. */
    connectTimeoutMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /**
     * How long `ready()` waits for a connection, and `counts()` for the broker's answer, before
     * rejecting with `BrokerUnavailableError`.
     */
    readyTimeoutMs: z.number().int().positive().max(maxTimerMs).default(10_000),
    /**
     * How long `close()` waits for the broker and the state store to close; past it, what is
     * left is abandoned with a warning and `close()` resolves (see README, Failure modes).
     */
    closeTimeoutMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /**
     * How long an unused delay queue (one per delay bucket) stays after its bucket: its
     * `x-expires` is bucket + this, and the provider declares it again every half of this while
     * it publishes to it. Every provider of a queue must use the same value (the broker refuses
     * a declare whose `x-expires` differs from the queue's). Shorter cleans up unused buckets
     * sooner at the cost of more declares; at most 60 000, so the longest delay still fits.
     */
    delayQueueIdleMs: z
      .number()
      .int()
      .min(2_000)
      .max(defaultDelayQueueIdleMs)
      .default(defaultDelayQueueIdleMs),
    /**
     * Largest encoded job (bytes) the broker takes: a bigger one is refused at `add` with
     * `MessageTooLargeError`. Default: RabbitMQ's default `max_message_size` for the broker's
     * version (128 MiB; 16 MiB from 4.0); set it when the broker's `max_message_size` differs.
     */
    maxMessageBytes: z
      .number()
      .int()
      .positive()
      .max(512 * 1024 * 1024)
      .optional(),
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

/** With a job state store: everything the other providers do. */
const stateCapabilities: ProviderCapabilities = allCapabilities;

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
  readonly #connection: AmqpConnection;
  readonly #topology: Topology;
  readonly #publisher: RabbitPublisher;
  readonly #consumers: RabbitConsumers;
  readonly #held: HeldDeliveries;
  /** Without a state store: outcomes of tries that finished after their channel closed. */
  readonly #outcomes: RememberedOutcomes;
  /** With a state store: what the provider does through it. */
  readonly #bridge: StateBridge | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: RabbitMqProviderOptions) {
    this.#options = parseOptions('RabbitMqProvider', rabbitMqProviderOptionsSchema, options);
    this.#logger = childLogger(this.#options.logger, { component: 'message-queue', provider: 'rabbitmq' });
    this.connectionName = this.#options.connectionName ?? `noa-mq-${randomBytes(4).toString('hex')}`;
    this.#state = this.#options.state;
    this.capabilities = this.#state ? stateCapabilities : capabilities;
    this.#connection = new AmqpConnection({
      url: this.#options.url,
      connectionName: this.connectionName,
      reconnectDelayMs: this.#options.reconnectDelayMs,
      maxReconnectDelayMs: this.#options.maxReconnectDelayMs,
      connectTimeoutMs: this.#options.connectTimeoutMs,
      logger: this.#logger,
      onConnected: () => {
        this.#topology.reset();
        this.#consumers.restartAll();
      },
      onLost: () => {
        this.#consumers.resetAll();
        // Deliveries held from the dead channel stay known (until their tries settle), so their
        // redeliveries here are not run twice in this process (see `HeldDeliveries.rebind`).
      },
      onClosing: () => this.#consumers.wakeAll(),
    });
    const connection = this.#connection;
    this.#topology = new Topology(() => connection.declarer(), this.#options.delayQueueIdleMs);
    this.#publisher = new RabbitPublisher(
      connection,
      this.#topology,
      this.#state !== undefined,
      this.#options.maxMessageBytes,
    );
    this.#outcomes = new RememberedOutcomes(rememberOutcomesMs(this.#options.maxReconnectDelayMs));
    // With a store, the store drops the redelivery of a finished job (its outcome is stored).
    this.#consumers = new RabbitConsumers(
      connection,
      this.#topology,
      this.#state,
      this.#logger,
      this.#state ? undefined : (queue, delivery) => this.#settleRedelivery(queue, delivery),
    );
    this.#held = new HeldDeliveries(() => connection.generation);
    this.#bridge = this.#state
      ? new StateBridge({
          state: this.#state,
          connection,
          publisher: this.#publisher,
          consumers: this.#consumers,
          held: this.#held,
          logger: this.#logger,
          prefetch: this.#options.prefetch,
        })
      : undefined;
  }

  async add(queue: string, records: JobRecord[], now: number): Promise<boolean[]> {
    if (this.#bridge) return this.#bridge.add(queue, records, now);
    await this.#publisher.publish(
      queue,
      records.map((record) => ({ record, target: 'queue' as const, now })),
    );
    return records.map(() => true);
  }

  async addFlow(queue: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean> {
    if (!this.#bridge) throw new UnsupportedOperationError(this.name, 'flows');
    return this.#bridge.addFlow(queue, parent, children, now);
  }

  async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    // Like every other call of a closed provider. Answering "no jobs" instead made a worker still
    // running on it exchange in a microtask loop (its wait for work returns at once once closed),
    // starving the process's timers.
    if (this.#connection.closed) throw new ClosedError('RabbitMqProvider');
    // The broker refused to declare the queue when its consumer last started (BrokerRefusedError):
    // reported to the worker, which backs off before the next exchange starts it again.
    const refused = this.#consumers.takeRefusal(queue);
    if (refused) throw refused;
    // The answer comes from this process's buffer (and the store's): while the broker is away or
    // frozen it would say "no jobs" at once, and the worker would count the broker up. Waiting
    // until the broker is known to answer (connected, and heard from lately or probed) makes the
    // outage an unanswered call (backend_up 0, health down), as on Redis. With a store, while
    // disconnected the settlements are still stored (a consumer restarting waits for the
    // connection instead; see `StateBridge.exchange`).
    if (!this.#connection.fresh && (!this.#bridge || this.#connection.connected))
      await this.#connection.answered();
    if (this.#bridge) return this.#bridge.exchange(queue, request);
    const publishes: PublishItem[] = [];
    const acks: Delivery[] = [];
    const stale: string[] = [];
    const awaiting: string[] = [];
    const settledLater: string[] = [];
    for (const settlement of request.settle) {
      const id = settlement.record.id;
      const remembered = this.#outcomes.sentAgain(queue, settlement);
      if (remembered) {
        if (remembered.state !== 'settled') awaiting.push(id);
        else if (remembered.deadLettered) settledLater.push(id);
        continue;
      }
      const target = this.#settleTarget(queue, id);
      if (target && 'closed' in target) {
        // Its channel closed and no redelivery is here yet: kept for the redelivery, which the
        // broker may give back to this process (see `#settleRedelivery`).
        this.#outcomes.remember(
          queue,
          id,
          target.closed.tracked.message.content,
          settlement,
          request.now - Date.now(),
        );
        this.#logger.debug('outcome kept for the redelivery of a job whose channel closed', {
          queue,
          id,
        });
        awaiting.push(id);
        continue;
      }
      const held = target?.delivery;
      if (!held) {
        // Its channel closed and the broker gave the job to another consumer: the lease is lost.
        stale.push(id);
        continue;
      }
      if (settlement.kind === 'fail') {
        // With the payload as delivered, not as the handler left it.
        const record = { ...withDeliveredData(settlement.record) };
        if (settlement.retryAt !== null) record.availableAt = settlement.retryAt;
        publishes.push({ record, target: settlement.retryAt === null ? 'dead' : 'queue', now: request.now });
      }
      acks.push(held);
    }
    const fitted = this.#publisher.fitSettled(queue, publishes);
    // Retries over the broker's limit, dead-lettered instead: the worker reports them so.
    const deadLettered = fitted
      .filter((item, index) => item.target === 'dead' && publishes[index]!.target === 'queue')
      .map((item) => item.record.id)
      .concat(settledLater);
    if (fitted.length > 0) await this.#publisher.publish(queue, fitted);
    const generation = this.#connection.generation;
    for (const held of acks) {
      if (held.generation === generation) held.acks.ack(held.tracked);
    }
    const consumer = this.#consumers.get(queue);
    this.#consumers.want(consumer, request.fetch, this.#options.prefetch, request.window);
    if (consumer.wanted && !consumer.channel && !consumer.paused) void this.#consumers.start(queue, consumer);
    const jobs: JobRecord[] = [];
    while (jobs.length < request.fetch && consumer.buffer.length > 0) {
      const delivery = consumer.buffer.shift()!;
      if (delivery.generation !== generation) continue;
      const record = decodeMessage(delivery.tracked.message.content);
      if (!record) {
        rejectUndecodable(delivery, queue, this.#logger);
        continue;
      }
      if (delivery.tracked.message.fields.redelivered && this.#held.rebind(queue, record.id, delivery))
        continue;
      this.#held.hold(queue, record.id, delivery);
      jobs.push(deliveredFrom(record, delivery.tracked.message.content));
    }
    const response: ExchangeResponse = { jobs };
    if (stale.length > 0) response.stale = stale;
    if (deadLettered.length > 0) response.deadLettered = deadLettered;
    if (awaiting.length > 0) response.awaitingRedelivery = awaiting;
    return response;
  }

  /**
   * A redelivered message as it arrives (without a store): if it is the message of a try that
   * finished here after its channel closed, it is settled with that try's outcome (acknowledged,
   * after publishing the failed try's retry or dead letter) and not run again. True when it was.
   */
  #settleRedelivery(queue: string, delivery: Delivery): boolean {
    const remembered = this.#outcomes.match(queue, delivery.tracked.message.content);
    if (!remembered) return false;
    remembered.delivery = delivery;
    if (remembered.state === 'waiting') void this.#applyRemembered(queue, remembered);
    // Redelivered again after it was settled (the ack was lost with its channel): acked again.
    else if (remembered.state === 'settled') this.#ackRemembered(remembered);
    // 'settling': this latest delivery is acknowledged once the publish is confirmed.
    return true;
  }

  /** Applies a kept outcome to its redelivery: publishes a failed try's retry or dead letter, then acks. */
  async #applyRemembered(queue: string, remembered: RememberedOutcome): Promise<void> {
    const { settlement } = remembered;
    if (settlement.kind === 'fail') {
      remembered.state = 'settling';
      const record = { ...withDeliveredData(settlement.record) };
      if (settlement.retryAt !== null) record.availableAt = settlement.retryAt;
      const target = settlement.retryAt === null ? ('dead' as const) : ('queue' as const);
      const now = Date.now() + remembered.clockOffsetMs;
      const [fitted] = this.#publisher.fitSettled(queue, [{ record, target, now }]);
      remembered.deadLettered = fitted!.target === 'dead' && target === 'queue';
      try {
        await this.#publisher.publish(queue, [fitted!]);
      } catch (error) {
        // Not known to be published: the redelivery runs (at-least-once), as if none were kept.
        this.#logger.warn('could not publish the kept outcome of a redelivered job; it runs again', {
          queue,
          id: record.id,
          error: error instanceof Error ? error.message : String(error),
        });
        this.#outcomes.forget(remembered);
        const delivery = remembered.delivery;
        delete remembered.delivery;
        if (delivery && delivery.generation === this.#connection.generation) {
          settled(delivery);
          delivery.acks.nack(delivery.tracked, true);
        }
        return;
      }
    }
    remembered.state = 'settled';
    this.#ackRemembered(remembered);
    // A worker waiting for work learns at its next exchange that its outcome stands.
    this.#consumers.get(queue).wakers.wakeAll();
  }

  #ackRemembered(remembered: RememberedOutcome): void {
    const delivery = remembered.delivery;
    delete remembered.delivery;
    if (!delivery || delivery.generation !== this.#connection.generation) return;
    settled(delivery);
    delivery.acks.ack(delivery.tracked);
  }

  /**
   * Acknowledges a completed delivery without waiting for the worker's next exchange, so the
   * prefetch window refills continuously; the acks of one tick go out as one `multiple` frame.
   */
  settleNow(queue: string, settlement: Settlement): boolean {
    // With a state store the outcome is stored first (batched in the next exchange), then acked.
    if (settlement.kind !== 'complete' || this.#state) return false;
    const held = this.#held.peek(queue, settlement.record.id);
    // Its channel is gone: `exchange` settles the redelivery, keeps the outcome for it, or
    // reports the outcome refused (`stale`).
    if (held?.generation !== this.#connection.generation) return false;
    this.#held.takeAny(queue, settlement.record.id);
    held.acks.ack(held.tracked);
    return true;
  }

  /**
   * The delivery a finished try settles (without a store): the one it came on, or, if that
   * channel is gone, the broker's redelivery of the job still waiting in this process's buffer
   * (a worker at full concurrency had not fetched it), taken out so it does not run again.
   * `closed` (the delivery it came on) when that channel is gone and no redelivery is here: the
   * redelivery may still come back to this process. None when this process holds no delivery
   * of the job (the redelivery came back here and was run, or the try was given back): another
   * run holds the job, so this try's outcome is refused.
   */
  #settleTarget(queue: string, id: string): { delivery: Delivery } | { closed: Delivery } | undefined {
    const held = this.#held.takeAny(queue, id);
    if (!held) return undefined;
    if (held.generation === this.#connection.generation) return { delivery: held };
    const { buffer } = this.#consumers.get(queue);
    const index = this.#redeliveryIndex(buffer, id);
    return index < 0 ? { closed: held } : { delivery: buffer.splice(index, 1)[0]! };
  }

  /** Where a redelivery of the job on the live channel waits in a consumer's buffer (-1: none). */
  #redeliveryIndex(buffer: readonly Delivery[], id: string): number {
    const generation = this.#connection.generation;
    return buffer.findIndex(
      (delivery) =>
        delivery.generation === generation &&
        delivery.tracked.message.fields.redelivered &&
        decodeMessage(delivery.tracked.message.content)?.id === id,
    );
  }

  async extendLeases(queue: string, jobs: readonly LeasedJob[], leaseUntil: number): Promise<LeaseRenewal> {
    // Answered without the broker (by the store, or here), and not made to wait for it: the
    // leases must be kept while it is away (with a store, others would recover the jobs). Unless
    // the broker was heard from lately, the answer says so, or the worker would take it for the
    // broker answering (see `backendDown`): a frozen broker stays connected.
    const renewal = await this.#renew(queue, jobs, leaseUntil);
    return this.#connection.fresh ? renewal : { ...renewal, backendDown: true };
  }

  async #renew(queue: string, jobs: readonly LeasedJob[], leaseUntil: number): Promise<LeaseRenewal> {
    // With a store, a lease's token is its message's token (or a takeover's lease).
    if (this.#state) return this.#state.extendLeases(queue, jobs, leaseUntil);
    // Without one the broker keeps a delivery until its channel closes: nothing to renew (and no
    // cancel), but a job whose channel closed is lost unless its redelivery came back here.
    const lost = jobs.filter((job) => !this.#holdsLive(queue, job.id)).map((job) => job.id);
    return { cancelled: [], lost };
  }

  /** Whether a job's delivery here is on the live channel, or its redelivery waits in the buffer. */
  #holdsLive(queue: string, id: string): boolean {
    if (this.#held.peek(queue, id)?.generation === this.#connection.generation) return true;
    return this.#redeliveryIndex(this.#consumers.get(queue).buffer, id) >= 0;
  }

  async stopFetching(queue: string): Promise<void> {
    const consumer = this.#consumers.find(queue);
    if (consumer) await this.#consumers.stopConsuming(consumer);
  }

  async release(
    queue: string,
    records: JobRecord[],
    now: number,
    stalled?: StalledRelease,
  ): Promise<StalledReleaseResult | undefined> {
    try {
      // Back to queued in the store first, so the requeued message is not judged a duplicate.
      // Without a store nothing counts stalls (no lease recovery): the message is requeued.
      return (await this.#state?.release(queue, records, now, stalled)) ?? undefined;
    } finally {
      for (const record of records) {
        const held = this.#held.take(queue, record.id);
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
    // Answered only once the broker is known to answer, as `exchange`: an instant answer (from
    // this process, or from the store while the broker is away or frozen) would count the broker
    // up between two unanswered exchanges, one more `error` each pass, or hide a frozen broker
    // from a worker whose slots are all busy (no exchange in flight). What it recovers is
    // published to the broker anyway.
    if (!this.#connection.fresh) await this.#connection.answered();
    // Without a store, redelivery of a dead consumer's jobs and DLQ expiry are the broker's job.
    if (!this.#bridge) return { recovered: 0, deadLettered: 0, removed: 0 };
    return this.#bridge.maintain(queue, now, maxStalls, retention);
  }

  waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    return this.#consumers.waitForWork(queue, timeoutMs, signal);
  }

  async getJob(queue: string, id: string): Promise<JobInfo | undefined> {
    if (!this.#state) throw new UnsupportedOperationError(this.name, 'getJob');
    return this.#state.getJob(queue, id, Date.now());
  }

  /**
   * Exact, from the state store, once the broker is known to answer (so `queue.checkHealth()`
   * reports a broker that is down or frozen, not the store alone). Without one: `waiting`,
   * `failed` and `delayed` from passive declares; `active` is this process's deliveries only.
   * The counts are the broker's: one that is down or frozen (connected, nothing answers) rejects
   * them with {@link BrokerUnavailableError} after `readyTimeoutMs` instead of waiting for it
   * (until SIGCONT, or amqplib's heartbeat closing the connection two minutes later).
   */
  async counts(queue: string): Promise<JobCounts> {
    if (this.#state) {
      if (!this.#connection.fresh) await this.#brokerBound(this.#connection.answered());
      return this.#state.counts(queue, Date.now());
    }
    return this.#brokerBound(this.#brokerCounts(queue));
  }

  /**
   * `work` (which waits for the broker), or {@link BrokerUnavailableError} once `timeoutMs`
   * (default `readyTimeoutMs`) passes without it, naming the last connection error, or saying
   * the broker was connected but did not answer (frozen or hung). `work` goes on (an AMQP call
   * cannot be taken back): a late answer is dropped.
   */
  async #brokerBound<T>(work: Promise<T>, timeoutMs: number = this.#options.readyTimeoutMs): Promise<T> {
    try {
      return await withDeadline(work, timeoutMs, 'wait for RabbitMQ');
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      work.catch(() => {});
      // Connected, the broker still did not answer: frozen or hung, not refused.
      const reason = this.#connection.connected
        ? 'connected, but the broker did not answer'
        : this.#connection.lastError;
      throw new BrokerUnavailableError(brokerHost(this.#options.url), timeoutMs, reason);
    }
  }

  /** Counts without a state store, from passive declares (see `counts`). */
  async #brokerCounts(queue: string): Promise<JobCounts> {
    await this.#topology.declare(queue);
    // Passive declares on the consuming connection's declare channel: the publishing one stops
    // being read while a memory alarm blocks it, and a queue gone (404) closes only this channel.
    const channel = await this.#connection.declarer();
    const main = await channel.checkQueue(queue);
    const dead = await channel.checkQueue(deadQueueName(queue));
    let delayed = 0;
    for (const name of this.#topology.delayQueues(queue)) {
      delayed += await channel
        .checkQueue(name)
        .then((reply) => reply.messageCount)
        .catch(() => 0);
    }
    const consumer = this.#consumers.find(queue);
    return {
      waiting: main.messageCount,
      delayed,
      active: (consumer?.buffer.length ?? 0) + this.#held.count(queue),
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
    await this.#consumers.pauseLocally(this.#consumers.get(queue));
  }

  async resume(queue: string): Promise<void> {
    await this.#state?.resume(queue);
    const consumer = this.#consumers.get(queue);
    consumer.paused = false;
    if (consumer.wanted) await this.#consumers.start(queue, consumer);
  }

  /** With a state store the count is the store's (messages left in delay buckets are dropped when due). */
  async drain(queue: string, includeDelayed: boolean): Promise<number> {
    const forgotten = await this.#state?.drain(queue, includeDelayed, Date.now());
    await this.#topology.declare(queue);
    const { publisher } = await this.#connection.ready();
    let removed = (await publisher.purgeQueue(queue)).messageCount;
    for (const name of await this.#groupQueueNames(queue)) {
      await publisher.purgeQueue(name).catch(() => undefined);
    }
    if (includeDelayed) {
      for (const name of this.#topology.delayQueues(queue)) {
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

  async cancel(queue: string, id: string, now: number): Promise<CancelResult> {
    if (!this.#bridge) throw new UnsupportedOperationError(this.name, 'cancel');
    return this.#bridge.cancel(queue, id, now);
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
    if (this.#bridge) return this.#bridge.redrive(queue, ids, now);
    if (ids !== undefined) throw new UnsupportedOperationError(this.name, 'dlq.retry(id)');
    await this.#topology.declare(queue);
    const { publisher } = await this.#connection.ready();
    let moved = 0;
    // Messages that are no job stay in the DLQ (returned once the pass is over) for someone to look at.
    const kept: GetMessage[] = [];
    // Only the messages dead at the call: a worker that fails the redriven jobs again appends them
    // to this same queue, and taking those too kept the redrive going (each job run again with
    // fresh attempts) for as long as the worker failed them faster than they were moved.
    const { messageCount: deadAtCall } = await publisher.checkQueue(deadQueueName(queue));
    try {
      for (let taken = 0; taken < deadAtCall; taken += 1) {
        const message = await publisher.get(deadQueueName(queue), { noAck: false });
        if (!message) return moved;
        const record = decodeMessage(message.content);
        if (!record) {
          kept.push(message);
          continue;
        }
        await this.#publisher.publish(queue, [
          { record: { ...record, attemptsMade: 0, availableAt: now }, target: 'queue', now },
        ]);
        publisher.ack(message);
        moved += 1;
      }
      return moved;
    } finally {
      if (kept.length > 0) {
        this.#logger.warn('dead-letter queue holds messages that are not jobs; left there', {
          queue,
          count: kept.length,
        });
        for (const message of kept) publisher.nack(message, false, true);
        // A nack has no reply: without this, redrive returned before the broker had put them
        // back, and a look at the DLQ right after (another connection's checkQueue) missed one.
        // The broker handles a channel's methods in order, the requeues included, so a passive
        // declare's reply on this channel means they are back.
        await publisher.checkQueue(deadQueueName(queue)).catch(() => undefined);
      }
    }
  }

  async purgeDead(queue: string, ids: string[] | undefined): Promise<number> {
    if (this.#state) return this.#state.purgeDead(queue, ids);
    if (ids !== undefined) throw new UnsupportedOperationError(this.name, 'dlq.purge(ids)');
    await this.#topology.declare(queue);
    const { publisher } = await this.#connection.ready();
    return (await publisher.purgeQueue(deadQueueName(queue))).messageCount;
  }

  /** The job group queues of a queue: those the store has seen and those declared here. */
  async #groupQueueNames(queue: string): Promise<string[]> {
    const names = new Set(this.#topology.groupQueues(queue));
    for (const group of (await this.#state?.groups(queue)) ?? []) names.add(groupQueueName(queue, group));
    return [...names];
  }

  /** Deletes the queue, its DLQ, its delay queues and its group queues (for tests and teardown). */
  async deleteQueue(queue: string): Promise<void> {
    const { publisher } = await this.#connection.ready();
    const groupQueues = await this.#groupQueueNames(queue);
    for (const name of [queue, deadQueueName(queue), ...this.#topology.delayQueues(queue), ...groupQueues]) {
      await publisher.deleteQueue(name).catch(() => undefined);
      this.#topology.forget(name);
    }
  }

  /**
   * Resolves once a connection to the broker is open (connecting now if none is), so a wrong
   * `url` or a broker that is down shows at start. Rejects with {@link BrokerUnavailableError}
   * (naming the host and the last connection error) after `timeoutMs`, default
   * `readyTimeoutMs`; the provider keeps reconnecting in the background either way, so later
   * calls succeed once the broker is up. Optional: without it, operations wait for the broker.
   */
  async ready(timeoutMs: number = this.#options.readyTimeoutMs): Promise<void> {
    await this.#brokerBound(this.#connection.ready(), timeoutMs);
  }

  /**
   * Closes the AMQP connection and the state store, waiting at most `closeTimeoutMs`: past it,
   * what has not closed (a frozen broker, a store whose server does not answer) is abandoned
   * with a warning and the call resolves, so a shutdown never hangs on a dead dependency.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const timeoutMs = this.#options.closeTimeoutMs;
    const pending = new Set<string>();
    const step = async (name: string, work: () => Promise<void>): Promise<void> => {
      pending.add(name);
      try {
        await work();
      } catch (error) {
        this.#logger.warn(`closing the ${name} failed`, {
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        pending.delete(name);
      }
    };
    const state = this.#state;
    // In parallel: a dead broker must not keep the store's connections open, nor the reverse.
    const steps = Promise.all([
      step('RabbitMQ connection', () => this.#connection.close()),
      ...(state ? [step('state store', () => state.close())] : []),
    ]);
    try {
      await withDeadline(steps, timeoutMs, 'RabbitMqProvider.close');
    } catch {
      this.#logger.warn('RabbitMQ provider close timed out; abandoned what had not closed', {
        timeoutMs,
        pending: [...pending],
      });
      this.#connection.abandon();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The broker's `host:port` for messages: never the credentials of the URL. */
function brokerHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unparsable url)';
  }
}
