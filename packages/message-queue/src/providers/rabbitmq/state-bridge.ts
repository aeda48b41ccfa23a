import { ConfigError, type Logger } from '@noa/core';
import type { JobRecord } from '../../job-record.js';
import type {
  CancelResult,
  ExchangeRequest,
  ExchangeResponse,
  MaintenanceResult,
  RetentionPolicy,
  Settlement,
} from '../../provider.js';
import { deliveredFrom, settledWithDeliveredData } from '../delivered-data.js';
import type { JobStateStore, StatePublish } from '../job-state-store.js';
import { decodeMessage } from '../record-codec.js';
import type { AmqpConnection } from './connection.js';
import { neverAborted, type RabbitConsumers } from './consumers.js';
import { type Delivery, type HeldDeliveries, rejectUndecodable, settled } from './deliveries.js';
import { type RabbitPublisher, tokenOf } from './publisher.js';
import { groupNameProblem } from './topology.js';

/** How long the first fetch of a new consumer waits for the broker's first push. */
const firstDeliveryWaitMs = 50;

/** How often a consumer stopped by a global pause re-reads the flag (in case a resume was missed). */
const pauseRecheckMs = 1_000;

/** What {@link StateBridge} works with: the provider's parts. */
export interface StateBridgeParts {
  state: JobStateStore;
  connection: AmqpConnection;
  publisher: RabbitPublisher;
  consumers: RabbitConsumers;
  held: HeldDeliveries;
  logger: Logger;
  /** The `prefetch` option (default: the worker's first fetch size). */
  prefetch: number | undefined;
}

/**
 * The RabbitMQ provider with a job state store: adds claim ids in the store before publishing,
 * each worker exchange settles and judges deliveries in one store call, and what the store
 * asks to publish (retries, recoveries, redrives, released flow parents) is published and then
 * confirmed off its outbox.
 */
export class StateBridge {
  readonly #state: JobStateStore;
  readonly #connection: AmqpConnection;
  readonly #publisher: RabbitPublisher;
  readonly #consumers: RabbitConsumers;
  readonly #held: HeldDeliveries;
  readonly #logger: Logger;
  readonly #prefetch: number | undefined;

  constructor(parts: StateBridgeParts) {
    this.#state = parts.state;
    this.#connection = parts.connection;
    this.#publisher = parts.publisher;
    this.#consumers = parts.consumers;
    this.#held = parts.held;
    this.#logger = parts.logger;
    this.#prefetch = parts.prefetch;
  }

  /**
   * Publishes what the state store asked for (retries, recoveries, redrives, released flow
   * parents). A failure is logged, not thrown: the entries stay in the store's outbox and the
   * next maintenance pass after `outboxTimeoutMs` publishes them again.
   */
  async publish(queue: string, items: StatePublish[], now: number): Promise<void> {
    if (items.length === 0) return;
    try {
      await this.#publisher.publish(
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
    this.#confirm(queue, items);
  }

  /** Takes confirmed messages off the outbox, off the caller's path (a lost confirm only republishes). */
  #confirm(queue: string, items: StatePublish[]): void {
    this.#state
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
  async add(queue: string, records: JobRecord[], now: number): Promise<boolean[]> {
    checkGroups(queue, records);
    const tokens = await this.#state.add(queue, records, now);
    const fresh: StatePublish[] = [];
    for (const [index, record] of records.entries()) {
      const token = tokens[index] ?? 0;
      if (token > 0) fresh.push({ record, token });
    }
    await this.#publishClaimed(queue, fresh, now);
    return tokens.map((token) => token > 0);
  }

  /** Claims a flow; publishes its children (or the parent alone) and releases the claims if that fails. */
  async addFlow(queue: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean> {
    const state = this.#state;
    checkGroups(queue, [parent, ...children]);
    const tokens = await state.addFlow(queue, parent, children, now);
    if (tokens === undefined) return false;
    const fresh = (children.length === 0 ? [parent] : children).map((record, index) => ({
      record,
      token: tokens[index] ?? 0,
    }));
    try {
      await this.#publishClaimed(queue, fresh, now);
    } catch (error) {
      await state.unclaim(queue, [{ id: parent.id, token: 0 }]).catch(() => {});
      throw error;
    }
    return true;
  }

  async #publishClaimed(queue: string, fresh: StatePublish[], now: number): Promise<void> {
    try {
      await this.#publisher.publish(
        queue,
        fresh.map(({ record, token }) => ({ record, target: 'queue' as const, now, token })),
      );
    } catch (error) {
      await this.#state
        .unclaim(
          queue,
          fresh.map(({ record, token }) => ({ id: record.id, token })),
        )
        .catch(() => {
          // Left claimed: the outbox publishes them after `outboxTimeoutMs` (the add may still succeed).
        });
      throw error;
    }
    this.#confirm(queue, fresh);
  }

  /** Lease recovery and retention in the store; recovered jobs are published again. */
  async maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult> {
    const { publish, ...result } = await this.#state.maintain(queue, now, maxStalls, retention);
    for (const { record } of publish) {
      // A stale delivery held here would hold a prefetch slot forever: its job has a new message.
      const held = this.#held.take(queue, record.id);
      if (!held) continue;
      settled(held);
      held.acks.ack(held.tracked);
    }
    await this.publish(queue, publish, now);
    return result;
  }

  async cancel(queue: string, id: string, now: number): Promise<CancelResult> {
    const { outcome, publish, parentsDeadLettered } = await this.#state.cancel(queue, id, now);
    // A flow parent released by the cancelled child (policy `ignore` or `continue`).
    await this.publish(queue, publish, now);
    return parentsDeadLettered ? { outcome, parentsDeadLettered } : { outcome };
  }

  /** Redrives dead jobs (all when `ids` is undefined); returns how many. */
  async redrive(queue: string, ids: string[] | undefined, now: number): Promise<number> {
    const publish = await this.#state.redrive(queue, ids, now);
    await this.publish(queue, publish, now);
    return publish.length;
  }

  /**
   * One store call settles the finished tries and judges the deliveries taken from the
   * consumer's buffer (run, drop or requeue); then retries are published and settled deliveries
   * acknowledged. A settlement is stored even when its delivery is gone (connection lost): the
   * redelivered message is then dropped instead of run again.
   */
  async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    const state = this.#state;
    const consumers = this.#consumers;
    const consumer = consumers.get(queue);
    const coldStart = consumers.want(consumer, request.fetch, this.#prefetch, request.window);
    if (consumer.paused && consumer.wanted && Date.now() - (consumer.pauseCheckedAt ?? 0) >= pauseRecheckMs) {
      consumer.pauseCheckedAt = Date.now();
      if (!(await state.isPaused(queue))) consumer.paused = false;
    }
    if (consumer.paused) consumer.pauseCheckedAt ??= Date.now();
    if (consumer.wanted && !consumer.channel && !consumer.paused) {
      const starting = consumers.start(queue, consumer);
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
      const delivery = consumers.nextDelivery(queue, consumer, weightOf);
      if (!delivery) break;
      if (delivery.generation !== this.#connection.generation) continue;
      const { message } = delivery.tracked;
      const record = decodeMessage(message.content);
      if (!record) {
        rejectUndecodable(delivery, queue, this.#logger);
        continue;
      }
      // Held here from before a reconnect: our worker still runs it and will store its outcome.
      const orphaned = message.fields.redelivered && !this.#held.has(queue, record.id);
      taken.push({ delivery, record, token: tokenOf(message), orphaned });
    }
    if (request.settle.length === 0 && taken.length === 0) return { jobs: [] };
    const settle = this.#fitSettled(queue, request);
    let result: Awaited<ReturnType<JobStateStore['exchange']>>;
    try {
      result = await state.exchange(queue, {
        settle,
        deliveries: taken.map(({ record, token, orphaned }) => ({ id: record.id, token, orphaned })),
        now: request.now,
        leaseUntil: request.leaseUntil,
      });
    } catch (error) {
      consumers.putBack(
        consumer,
        taken.reverse().map(({ delivery }) => delivery),
      );
      throw error;
    }
    await this.publish(queue, result.publish, request.now);
    const stale = result.stale && new Set(result.stale);
    // Not stored (result too large for the store): the delivery stays held until the try's
    // failure is stored, as a retry or dead-lettered.
    const oversized = result.oversized && new Set(result.oversized.map(({ id }) => id));
    for (const settlement of request.settle) {
      const id = settlement.record.id;
      if (oversized?.has(id)) continue;
      // A refused (stale) settlement's job may be held here by the run that superseded it: that
      // delivery stays. Its own delivery (same lease: the job was finished by a run elsewhere)
      // is acked, or it would hold a prefetch slot until the channel closes.
      const own = this.#held.peek(queue, id);
      if (stale?.has(id) && (!own || own.lease !== settlement.record.lease)) {
        continue;
      }
      const held = this.#held.take(queue, id);
      if (!held) continue;
      settled(held);
      held.acks.ack(held.tracked);
    }
    const jobs: JobRecord[] = [];
    let paused = false;
    for (const [index, { delivery, record, token }] of taken.entries()) {
      if (delivery.generation !== this.#connection.generation) continue;
      const verdict = result.verdicts[index] ?? 'drop';
      if (verdict === 'run') {
        const previous = this.#held.hold(queue, record.id, delivery);
        if (previous && previous.generation === this.#connection.generation) {
          // A stalled run here whose job the store requeued with this newer message: the old
          // delivery would otherwise hold its prefetch slot until the channel closes.
          settled(previous);
          previous.acks.ack(previous.tracked);
        }
        // The message token is this run's lease (a takeover has one of its own): the store
        // refuses its later steps once the job runs under a newer message or another lease.
        record.lease = result.leases?.[index] ?? String(token);
        delivery.lease = record.lease;
        jobs.push(deliveredFrom(record, delivery.tracked.message.content));
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
    if (paused) await consumers.pauseLocally(consumer);
    const response: ExchangeResponse = { jobs };
    if (result.stale) response.stale = result.stale;
    if (result.oversized) response.oversized = result.oversized;
    if (result.parentsDeadLettered) response.parentsDeadLettered = result.parentsDeadLettered;
    // Retries over the broker's limit, dead-lettered instead: the worker reports them so.
    const deadLettered = request.settle
      .filter(
        (asked, index) =>
          asked.kind === 'fail' && asked.retryAt !== null && (settle[index] as typeof asked).retryAt === null,
      )
      .map((asked) => asked.record.id);
    if (deadLettered.length > 0) response.deadLettered = deadLettered;
    return response;
  }

  /**
   * The settlements as the store takes them: each failed try's record with its payload as
   * delivered, not as the handler left it (see `withDeliveredData`), and, when that record is
   * over the broker's limit, dead-lettered instead (record fitted, see
   * `RabbitPublisher.fitFailed`), as without a store: its retry would be stored and then never
   * published (the publish refused, again at every outbox pass), and a dead job kept whole could
   * never be redriven.
   */
  #fitSettled(queue: string, request: ExchangeRequest): Settlement[] {
    return request.settle.map((asked) => {
      const settlement = settledWithDeliveredData(asked);
      if (settlement.kind !== 'fail') return settlement;
      const retrying = settlement.retryAt !== null;
      const fitted = this.#publisher.fitFailed(queue, settlement.record, request.now, retrying);
      return fitted ? { kind: 'fail', record: fitted, retryAt: null } : settlement;
    });
  }
}

/** Refuses, before anything is claimed, a job whose group's queue name AMQP cannot carry. */
function checkGroups(queue: string, records: JobRecord[]): void {
  for (const record of records) {
    if (record.group === undefined) continue;
    const problem = groupNameProblem(queue, record.group);
    if (problem)
      throw new ConfigError('job options', [{ path: 'group', message: `job ${record.id}: ${problem}` }]);
  }
}
