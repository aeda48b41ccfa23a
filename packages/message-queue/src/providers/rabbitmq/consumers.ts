import type { Logger } from '@noa/core';
import type { Channel, ConsumeMessage } from 'amqplib';
import { BrokerRefusedError } from '../../errors.js';
import { AckBatcher } from '../ack-batcher.js';
import { type BufferedGroup, pickBufferedGroup } from '../buffered-group-pick.js';
import type { JobStateStore, StateEvent } from '../job-state-store.js';
import { Wakers } from '../wakers.js';
import type { AmqpConnection } from './connection.js';
import { type Delivery, endOfTick, settled } from './deliveries.js';
import type { Topology } from './topology.js';

/** A signal that never aborts, for waits bounded by their timeout only. */
export const neverAborted: AbortSignal = new AbortController().signal;

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

/** Settles a redelivered message at its arrival (see `RabbitConsumers`); true when it did. */
export type RedeliverySettler = (queue: string, delivery: Delivery) => boolean;

/** One queue's consumer in this provider: its channel, its buffered deliveries, its pause. */
export interface Consumer {
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
  /** The broker refused the queue's declare at the last start, not yet reported to a worker. */
  refused?: BrokerRefusedError;
}

/**
 * The RabbitMQ provider's consumers, one per queue: each has its own channel (prefetch = the
 * worker's concurrency) and buffers what the broker pushes until the worker fetches it. With a
 * state store it also follows the queue's pause/resume from every process and consumes each job
 * group's queue, picking between groups fairly.
 */
export class RabbitConsumers {
  readonly #connection: AmqpConnection;
  readonly #topology: Topology;
  readonly #state: JobStateStore | undefined;
  readonly #logger: Logger;
  readonly #consumers = new Map<string, Consumer>();
  /** Consumer channels this provider closes itself (a stopped consumer): not a lost connection. */
  readonly #retired = new WeakSet<Channel>();
  /** Consumer channels on which the broker cancelled a subscription (see `#cancelledByBroker`). */
  readonly #brokerCancelled = new WeakSet<Channel>();
  readonly #settleRedelivery: RedeliverySettler | undefined;

  /**
   * @param settleRedelivery without a state store: given each redelivered message of a queue's
   * own consumer as it arrives; true when it settled it (not buffered, not run).
   */
  constructor(
    connection: AmqpConnection,
    topology: Topology,
    state: JobStateStore | undefined,
    logger: Logger,
    settleRedelivery?: RedeliverySettler,
  ) {
    this.#connection = connection;
    this.#topology = topology;
    this.#state = state;
    this.#logger = logger;
    this.#settleRedelivery = settleRedelivery;
  }

  /** The queue's consumer (created, not started, on first use). */
  get(queue: string): Consumer {
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

  /**
   * A worker fetches from the queue: its consumer is wanted from now on, with the `prefetch`
   * option or else that first fetch size, or the worker's `window` (an autoscaled worker's
   * `max`) when larger: the prefetch is set once, when the consumer starts. True the first time
   * (a cold start).
   */
  want(consumer: Consumer, fetch: number, prefetch: number | undefined, window?: number): boolean {
    if (fetch <= 0 || consumer.wanted) return false;
    consumer.wanted = true;
    consumer.prefetch = prefetch ?? Math.max(fetch, window ?? 0);
    return true;
  }

  /** The refusal of the queue's last consumer start (see `Consumer.refused`), once. */
  takeRefusal(queue: string): BrokerRefusedError | undefined {
    const consumer = this.#consumers.get(queue);
    const refused = consumer?.refused;
    if (refused) delete consumer.refused;
    return refused;
  }

  /** The queue's consumer if it was ever used. */
  find(queue: string): Consumer | undefined {
    return this.#consumers.get(queue);
  }

  /** A new connection: restarts the consumers that are wanted and not paused. */
  restartAll(): void {
    for (const [queue, consumer] of this.#consumers) {
      if (consumer.wanted && !consumer.paused) void this.start(queue, consumer);
    }
  }

  /** The connection was lost: channels and their deliveries are gone (the broker requeued them). */
  resetAll(): void {
    for (const consumer of this.#consumers.values()) {
      delete consumer.channel;
      delete consumer.tag;
      consumer.buffer = [];
      consumer.groupBuffers.clear();
      consumer.groupTags.clear();
      consumer.outstanding.clear();
    }
  }

  /** Wakes every caller parked in `waitForWork` (closing). */
  wakeAll(): void {
    for (const consumer of this.#consumers.values()) {
      consumer.wakers.wakeAll();
    }
  }

  /** Resolves when the queue may have work, after `timeoutMs` or when `signal` aborts. */
  waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const consumer = this.get(queue);
    if (this.#connection.closed) return Promise.resolve();
    if (consumer.awaitingPush) {
      // The last fetch stopped for a group's next push: wait for a delivery (briefly), not spin.
      consumer.awaitingPush = false;
      return consumer.wakers.wait(Math.min(timeoutMs, backlogReadMs), signal);
    }
    if (consumer.buffer.length > 0) return Promise.resolve();
    for (const buffer of consumer.groupBuffers.values()) if (buffer.length > 0) return Promise.resolve();
    return consumer.wakers.wait(timeoutMs, signal);
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
    else if (event.type === 'pause') void this.pauseLocally(consumer);
    else if (event.type === 'resume') {
      consumer.paused = false;
      if (consumer.wanted) void this.start(queue, consumer);
    }
  }

  /** Stops the consumer in this process (its buffered deliveries go back to the queue). */
  async pauseLocally(consumer: Consumer): Promise<void> {
    consumer.paused = true;
    consumer.pauseCheckedAt = Date.now();
    await consumer.starting;
    await this.#stop(consumer);
  }

  /**
   * A worker closed: cancels the consumer (its buffered deliveries go back to the queue) without
   * pausing it; the next fetch of a worker still open here wants and starts it again, woken now.
   */
  async stopConsuming(consumer: Consumer): Promise<void> {
    consumer.wanted = false;
    await consumer.starting;
    if (!consumer.wanted) await this.#stop(consumer);
    consumer.wakers.wakeAll();
  }

  /** Starts consuming (unless started, starting, paused or closed); resolves once subscribed. */
  async start(queue: string, consumer: Consumer): Promise<void> {
    if (consumer.channel || consumer.starting || consumer.paused || this.#connection.closed) return;
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
        await this.#topology.declare(queue);
        const { consuming: model } = await this.#connection.ready();
        const generation = this.#connection.generation;
        const channel = await model.createChannel();
        channel.on('error', (error: Error) =>
          // The broker says why it closed the channel (e.g. PRECONDITION_FAILED: a delivery not
          // acknowledged within its consumer_timeout); the reconnect that follows says nothing.
          this.#logger.warn('RabbitMQ closed a consumer channel', { queue, error: error.message }),
        );
        channel.on('close', () => {
          if (!this.#retired.has(channel)) this.#connection.lost(model);
        });
        await channel.prefetch(consumer.prefetch);
        const acks = new AckBatcher<ConsumeMessage>(channel, endOfTick);
        const { consumerTag } = await channel.consume(
          queue,
          (message) => {
            if (!message) {
              this.#cancelledByBroker(queue, consumer, channel, queue);
              return;
            }
            this.#connection.heard();
            const delivery: Delivery = { tracked: acks.track(message), acks, generation };
            // A job this process finished after its channel closed: settled with that outcome.
            const settledHere = message.fields.redelivered && this.#settleRedelivery?.(queue, delivery);
            if (!settledHere) consumer.buffer.push(delivery);
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
        if (consumer.paused) await this.#stop(consumer);
      } catch (error) {
        if (error instanceof BrokerRefusedError) consumer.refused = error;
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

  /**
   * The broker cancelled one of the consumer's subscriptions itself (amqplib passes `null`): its
   * queue `cancelled` was deleted, or became unavailable (its node down in a cluster). The
   * channel stays open, so nothing else would notice, and the worker would wait
   * for deliveries that never come. The consumer is stopped as a pause stops it (buffered
   * deliveries back, running ones still acknowledged on the old channel) and started again,
   * declaring its queues anew.
   */
  #cancelledByBroker(queue: string, consumer: Consumer, channel: Channel, cancelled: string): void {
    // Once per channel: a node going down cancels the queue's and every group queue's consumer.
    if (consumer.channel !== channel || this.#brokerCancelled.has(channel)) return;
    this.#brokerCancelled.add(channel);
    this.#logger.warn('RabbitMQ cancelled a consumer (queue deleted or unavailable): consuming again', {
      queue,
      cancelled,
    });
    this.#topology.forget(queue);
    this.#topology.forget(cancelled);
    void (async () => {
      await consumer.starting;
      if (consumer.channel !== channel) return;
      await this.#stop(consumer);
      if (consumer.wanted && !consumer.paused) await this.start(queue, consumer);
      consumer.wakers.wakeAll();
    })();
  }

  /** With a state store: consumes a job group's queue on the consumer's channel (once). */
  async #consumeGroup(queue: string, consumer: Consumer, group: string): Promise<void> {
    const { channel, acks } = consumer;
    if (!channel || !acks || consumer.groupTags.has(group)) return;
    consumer.groupTags.set(group, '');
    const generation = this.#connection.generation;
    try {
      const name = await this.#topology.declareGroup(queue, group);
      const { consumerTag } = await channel.consume(
        name,
        (message) => {
          if (!message) {
            this.#cancelledByBroker(queue, consumer, channel, name);
            return;
          }
          this.#connection.heard();
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

  /**
   * Cancels the consumer, returns its buffered deliveries to the queue, then closes its channel
   * once the jobs still running from it (a pause, a worker closing beside another) are
   * acknowledged: a cancelled channel left open was one more channel per stop/start cycle.
   */
  /** The buffered deliveries of one channel (its batcher), taken out of the consumer's buffers. */
  #takeBufferedOf(consumer: Consumer, acks: AckBatcher<ConsumeMessage>): Delivery[] {
    const taken = consumer.buffer.filter((delivery) => delivery.acks === acks);
    consumer.buffer = consumer.buffer.filter((delivery) => delivery.acks !== acks);
    for (const [group, buffer] of consumer.groupBuffers) {
      taken.push(...buffer.filter((delivery) => delivery.acks === acks));
      consumer.groupBuffers.set(
        group,
        buffer.filter((delivery) => delivery.acks !== acks),
      );
    }
    return taken;
  }

  async #stop(consumer: Consumer): Promise<void> {
    const { channel, tag, acks } = consumer;
    delete consumer.channel;
    delete consumer.tag;
    if (!channel) return;
    const generation = this.#connection.generation;
    const buffered = this.#takeBuffered(consumer);
    const groupTags = [...consumer.groupTags.values()];
    consumer.groupTags.clear();
    try {
      if (tag) await channel.cancel(tag);
      for (const groupTag of groupTags) if (groupTag) await channel.cancel(groupTag);
      // Pushed while the cancels were on the wire (a consumer started again meanwhile has its
      // own channel and batcher: its deliveries stay).
      if (acks) buffered.push(...this.#takeBufferedOf(consumer, acks));
      for (const delivery of buffered) {
        settled(delivery);
        delivery.acks.nack(delivery.tracked, true);
      }
    } catch {
      // The channel died already: the broker requeued them.
      return;
    }
    const close = (): void => {
      // A channel of a connection since lost is gone already.
      if (this.#connection.generation !== generation) return;
      this.#retired.add(channel);
      channel.close().catch(() => {});
    };
    if (acks) acks.whenSettled(close);
    else close();
  }

  /**
   * The next buffered delivery: the queue's own in order, or, with job groups, one of the
   * backlogged groups (ungrouped jobs are the group `''`) by smooth weighted round robin with
   * this consumer's credits. A group whose buffer is empty but whose broker queue has ready
   * messages is still a candidate: when it is picked, the fetch stops there (its credit kept)
   * rather than give its turn away while the broker's push catches up, so weights hold even
   * when the broker delivers slower than the workers consume.
   */
  nextDelivery(queue: string, consumer: Consumer, weightOf: (group: string) => number): Delivery | undefined {
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

  /** Puts deliveries taken by `nextDelivery` back at the head of their buffers (pass the last taken first). */
  putBack(consumer: Consumer, deliveries: Delivery[]): void {
    for (const delivery of deliveries) {
      const buffer =
        delivery.group === undefined ? consumer.buffer : consumer.groupBuffers.get(delivery.group);
      if (buffer) buffer.unshift(delivery);
      else consumer.groupBuffers.set(delivery.group!, [delivery]);
    }
  }

  /** The last read ready count of a group queue; reads it again (in the background) when stale. */
  #brokerBacklog(queue: string, consumer: Consumer, group: string): number {
    const entry = consumer.backlog.get(group);
    if (!entry || (!entry.reading && Date.now() - entry.readAt >= backlogReadMs)) {
      void this.#readBacklog(queue, consumer, group);
    }
    return entry?.count ?? 0;
  }

  /** Reads a group queue's ready count. */
  async #readBacklog(queue: string, consumer: Consumer, group: string): Promise<void> {
    let entry = consumer.backlog.get(group);
    if (!entry) {
      entry = { count: 0, readAt: 0, reading: false };
      consumer.backlog.set(group, entry);
    }
    if (entry.reading) return;
    entry.reading = true;
    try {
      entry.count = await this.#topology.groupReadyCount(queue, group);
    } catch {
      entry.count = 0;
    } finally {
      entry.reading = false;
      entry.readAt = Date.now();
    }
  }
}
