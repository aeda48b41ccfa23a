import type { ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import { BrokerRefusedError, MessageTooLargeError } from '../../errors.js';
import { maxPriority } from '../../job-options.js';
import type { JobErrorEntry, JobRecord } from '../../job-record.js';
import { encodeRecord } from '../record-codec.js';
import type { AmqpConnection } from './connection.js';
import { deadQueueName, type Topology } from './topology.js';

/** One record to publish: to its queue (or a delay queue when not yet available) or to the DLQ. */
export interface PublishItem {
  record: JobRecord;
  target: 'queue' | 'dead';
  now: number;
  /** The state token the message carries (with a state store). */
  token?: number;
}

/**
 * Message properties by priority, built once (amqplib only reads them). `mandatory`: a message
 * the broker cannot route (its queue deleted under this producer) comes back instead of being
 * dropped and confirmed all the same.
 */
const publishOptions = Array.from({ length: maxPriority + 1 }, (_, priority) =>
  Object.freeze({ persistent: true, priority, contentType: 'application/json', mandatory: true }),
);

/** AMQP's reply code of a mandatory message no queue took. */
const NO_ROUTE = 312;

/**
 * The message ids each publisher channel got back unroutable (`basic.return`), kept until the
 * message's confirm, which the broker sends after its return.
 */
const returnedOn = new WeakMap<ConfirmChannel, Set<string>>();

function returnedIds(channel: ConfirmChannel): Set<string> {
  let ids = returnedOn.get(channel);
  if (ids === undefined) {
    const set = new Set<string>();
    channel.on('return', (message: Message) => {
      const id = message.properties.messageId;
      if (typeof id === 'string') set.add(id);
    });
    returnedOn.set(channel, set);
    ids = set;
  }
  return ids;
}

/**
 * RabbitMQ's default `max_message_size` for a broker version: 128 MiB from 3.8, 16 MiB from 4.0
 * (a bigger message closes the publishing channel).
 */
export function defaultMaxMessageBytes(serverVersion: string | undefined): number {
  const major = Number.parseInt(serverVersion ?? '', 10);
  return major >= 4 ? 16 * 1024 * 1024 : 128 * 1024 * 1024;
}

/** The header carrying a message's state token (see `JobStateStore`). */
const tokenHeader = 'x-noa-token';

/** The state token of a delivered message (1: published before any retry). */
export function tokenOf(message: ConsumeMessage): number {
  const token = Number(message.properties.headers?.[tokenHeader]);
  return Number.isFinite(token) ? token : 1;
}

/**
 * Publishes job records with publisher confirms, routing each to its queue, its job group's
 * queue (with a state store), a delay queue or the DLQ.
 */
export class RabbitPublisher {
  readonly #connection: AmqpConnection;
  readonly #topology: Topology;
  readonly #groupQueues: boolean;
  readonly #maxMessageBytes: number | undefined;
  /** Numbers each message published (its `messageId`), to tell which one came back unroutable. */
  #sequence = 0;

  /**
   * @param groupQueues whether grouped jobs go to their group's queue (with a state store).
   * @param maxMessageBytes the largest message the broker takes (default: by its version).
   */
  constructor(
    connection: AmqpConnection,
    topology: Topology,
    groupQueues: boolean,
    maxMessageBytes: number | undefined,
  ) {
    this.#connection = connection;
    this.#topology = topology;
    this.#groupQueues = groupQueues;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** The largest message the broker takes: `maxMessageBytes`, else its version's default. */
  get maxBytes(): number {
    return this.#maxMessageBytes ?? defaultMaxMessageBytes(this.#connection.serverVersion);
  }

  /**
   * The settled fails (retries and dead-letters) whose encoded record is over the broker's limit
   * (its error history grew it), dead-lettered instead: the broker would refuse them, failing
   * every exchange that carries them. See {@link fitFailed}.
   */
  fitSettled(queue: string, items: PublishItem[]): PublishItem[] {
    return items.map((item) => {
      const fitted = this.fitFailed(queue, item.record, item.now, item.target === 'queue');
      return fitted ? { ...item, record: fitted, target: 'dead' as const } : item;
    });
  }

  /**
   * A failed try's record (its new error entry added; `retrying`: its retry, else its
   * dead-letter) cut to fit the broker's limit, or undefined when it fits as it is. The fitted
   * record is for the DLQ: its last error entry is a `MessageTooLargeError` (code
   * `NOA_MQ_MESSAGE_TOO_LARGE`) naming the size, the limit and the start of the error it
   * replaces, older entries dropped until it fits (then its message cut, then no history, for
   * a job added within a few hundred bytes of the limit), so it can be redriven later. A job
   * added within a few bytes of the limit may still not fit (see README, Failure modes).
   */
  fitFailed(queue: string, record: JobRecord, now: number, retrying: boolean): JobRecord | undefined {
    const maxBytes = this.maxBytes;
    const bytes = Buffer.byteLength(encodeRecord(record));
    if (bytes <= maxBytes) return undefined;
    const last = record.errors.at(-1);
    const reason = new MessageTooLargeError(queue, record.id, bytes, maxBytes);
    const entry: JobErrorEntry = {
      attempt: last?.attempt ?? record.attemptsMade,
      name: 'MessageTooLargeError',
      code: reason.code,
      message: `${reason.message}; dead-lettered instead of ${retrying ? 'retried' : 'failed'}; its error: ${last ? `${last.name}: ${last.message}`.slice(0, 512) : 'none'}`,
      at: last?.at ?? now,
    };
    const size = (candidate: JobRecord) => Buffer.byteLength(encodeRecord(candidate));
    let fitted: JobRecord = { ...record, errors: [...record.errors.slice(0, -1), entry], availableAt: now };
    while (fitted.errors.length > 1 && size(fitted) > maxBytes)
      fitted = { ...fitted, errors: fitted.errors.slice(1) };
    const over = size(fitted) - maxBytes;
    if (over <= 0) return fitted;
    // Still over: the job was added close to the limit. The entry's message is cut by as many
    // characters as there are bytes too many (each is at least one byte), and as a last resort
    // the history is left out (and the retry time, which a dead job does not need).
    const message = entry.message.slice(0, Math.max(0, entry.message.length - over));
    fitted = { ...fitted, errors: [{ ...entry, message }] };
    return size(fitted) <= maxBytes ? fitted : { ...fitted, errors: [], availableAt: record.createdAt };
  }

  /**
   * Publishes records (to the queue, a delay queue or the DLQ) and resolves once the broker has
   * confirmed every one of them. Each batch counts its own confirms through the per-message
   * callback (one shared function): `waitForConfirms` would wrap every message still unconfirmed
   * on the channel in a promise on each call, and make concurrent adds wait for each other.
   * Messages the broker returned unroutable (their queue deleted since this provider declared
   * it: an operator, a queue lost with its node, a delay queue expired) are declared for and sent
   * once more; returned again, the publish rejects with a {@link BrokerRefusedError}.
   */
  async publish(queue: string, items: PublishItem[], again = true): Promise<void> {
    if (items.length === 0) return;
    // Every body before the first send: one that cannot be encoded fails the batch with nothing published.
    const bodies = items.map(({ record }) => Buffer.from(encodeRecord(record)));
    await this.#topology.declare(queue);
    const routes: string[] = [];
    for (const { record, target, now } of items) {
      // Without a state store groups are not supported: grouped jobs share the queue.
      const base =
        record.group !== undefined && this.#groupQueues
          ? await this.#topology.declareGroup(queue, record.group)
          : queue;
      if (target === 'dead') routes.push(deadQueueName(queue));
      else if (record.availableAt > now)
        routes.push(await this.#topology.delayQueue(queue, record.availableAt - now, base));
      else routes.push(base);
    }
    const connection = this.#connection;
    const { publisher } = await connection.ready();
    // Checked before the first send: the broker closes the channel on a message over its limit,
    // which says only "channel closed" and takes the batch's other messages with it.
    const maxBytes = this.maxBytes;
    for (let index = 0; index < items.length; index += 1) {
      const bytes = bodies[index]!.length;
      if (bytes > maxBytes) throw new MessageTooLargeError(queue, items[index]!.record.id, bytes, maxBytes);
    }
    const returned = returnedIds(publisher);
    const ids: string[] = [];
    try {
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
            connection.heard();
            resolve();
          }
        };
        for (let index = 0; index < items.length; index += 1) {
          const { record, token } = items[index]!;
          this.#sequence = this.#sequence === Number.MAX_SAFE_INTEGER ? 1 : this.#sequence + 1;
          const messageId = String(this.#sequence);
          ids.push(messageId);
          const options = publishOptions[record.priority] ?? publishOptions[0]!;
          publisher.sendToQueue(
            routes[index]!,
            bodies[index]!,
            token === undefined
              ? { ...options, priority: record.priority, messageId }
              : { ...options, priority: record.priority, messageId, headers: { [tokenHeader]: token } },
            confirmed,
          );
        }
      });
    } catch (error) {
      for (const id of ids) returned.delete(id);
      throw error;
    }
    // Each return comes before its message's confirm: all of the batch's are in.
    if (returned.size === 0) return;
    const back: PublishItem[] = [];
    const backRoutes = new Set<string>();
    for (let index = 0; index < items.length; index += 1) {
      if (!returned.delete(ids[index]!)) continue;
      back.push(items[index]!);
      backRoutes.add(routes[index]!);
    }
    if (back.length === 0) return;
    if (!again) {
      const route = [...backRoutes].join(', ');
      throw new BrokerRefusedError(
        queue,
        'route a message to',
        NO_ROUTE,
        `no queue ${route} took it, after declaring it again`,
      );
    }
    // Declared again on the next publish: the queue, its DLQ, group and delay queues.
    this.#topology.forget(queue);
    for (const route of backRoutes) this.#topology.forget(route);
    await this.publish(queue, back, false);
  }
}
