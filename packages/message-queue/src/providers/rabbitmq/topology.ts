import type { Channel, Options } from 'amqplib';
import { delayBucket } from '../../delay-bucket.js';
import { BrokerRefusedError } from '../../errors.js';
import { maxPriority } from '../../job-options.js';

/** The dead-letter queue of a queue. */
export function deadQueueName(queue: string): string {
  return `${queue}.dead`;
}

/** The broker queue of a job group (with a state store). */
/** AMQP's longest queue name (a `shortstr`), in UTF-8 bytes. */
export const maxQueueNameBytes = 255;

/** The longest suffix a queue name can get: a delay queue's `.delay.<bucket>` at `maxDelayMs`. */
const delaySuffixBytes = '.delay.4200000000'.length;

/**
 * Why a job group cannot have a queue of its own (its name, a delay queue's suffix added, is
 * over AMQP's 255 bytes), or undefined. Checked before a grouped job is claimed or published:
 * amqplib throws on such a name after queueing the declare's reply, and the declare channel
 * then answers nothing again (every later add waits for ever).
 */
export function groupNameProblem(queue: string, group: string): string | undefined {
  const bytes = Buffer.byteLength(groupQueueName(queue, group));
  const max = maxQueueNameBytes - delaySuffixBytes;
  if (bytes <= max) return undefined;
  return `the RabbitMQ queue of this group ("${queue}.group.<group>") would take ${bytes} bytes of UTF-8, over the ${max} a queue name can take with a delay queue's suffix (AMQP allows 255)`;
}

export function groupQueueName(queue: string, group: string): string {
  return `${queue}.group.${group}`;
}

/** A job group queue's arguments: priorities like the main queue (no DLQ: the store has it). */
function groupQueueOptions(): Options.AssertQueue {
  return { durable: true, arguments: { 'x-max-priority': maxPriority } };
}

/**
 * The default of the provider's `delayQueueIdleMs`: a delay queue's `x-expires` is its bucket +
 * this. The broker deletes a delay queue that long after its last declare, with the messages in
 * it, and publishing to it does not renew that; a publish to a deleted queue is confirmed and
 * dropped. So a delay queue's declare is trusted for half of it ({@link delayQueueRenewMs}):
 * declared again once its declare is that old, a delay queue is there for each publish and stays
 * at least bucket + idle / 2 after it, so every message in it dead-letters out (after its bucket)
 * before it can expire.
 */
export const defaultDelayQueueIdleMs = 60_000;

/** How long a delay queue's last declare is trusted: half its idle time. */
export function delayQueueRenewMs(idleMs: number): number {
  return Math.floor(idleMs / 2);
}

/**
 * The broker queues of the RabbitMQ provider, declared once per connection (delay queues again
 * every {@link delayQueueRenewMs}, half of `delayQueueIdleMs`): each queue with its
 * dead-letter queue, its delay queues (one TTL queue per delay bucket that dead-letters back
 * into its target) and, with a state store, its job groups' queues. Remembers the delay and
 * group queues declared here, for counts, drain and delete.
 */
export class Topology {
  readonly #declarer: () => Promise<Channel>;
  readonly #declared = new Set<string>();
  readonly #delayQueues = new Map<string, Set<string>>();
  readonly #groupQueues = new Map<string, Set<string>>();
  /** Each delay queue's last declare (`performance.now()` when it was sent), or the one under way. */
  readonly #delayDeclares = new Map<string, { sentAt: number; done: Promise<void> }>();
  readonly #delayQueueIdleMs: number;

  /**
   * @param declarer resolves with the channel to declare on (connecting if needed).
   * @param delayQueueIdleMs a delay queue's `x-expires` past its bucket (see {@link defaultDelayQueueIdleMs}).
   */
  constructor(declarer: () => Promise<Channel>, delayQueueIdleMs = defaultDelayQueueIdleMs) {
    this.#declarer = declarer;
    this.#delayQueueIdleMs = delayQueueIdleMs;
  }

  /** Declares a queue on the declare channel; a refusal is a {@link BrokerRefusedError}. */
  async #assert(name: string, options: Options.AssertQueue): Promise<{ messageCount: number }> {
    // Never sent: amqplib would throw after queueing the reply, and the channel would hang.
    if (Buffer.byteLength(name) > maxQueueNameBytes)
      throw new RangeError(`RabbitMQ queue name over ${maxQueueNameBytes} bytes: ${name.slice(0, 64)}…`);
    const channel = await this.#declarer();
    try {
      return await channel.assertQueue(name, options);
    } catch (error) {
      throw refusal(error, name);
    }
  }

  /** A new connection: everything is declared again on first use. */
  reset(): void {
    this.#declared.clear();
    this.#delayDeclares.clear();
  }

  /** Declared again on next use (after the queue was deleted). */
  forget(name: string): void {
    this.#declared.delete(name);
    this.#delayDeclares.delete(name);
  }

  /** The delay queues of a queue declared by this provider. */
  delayQueues(queue: string): Iterable<string> {
    return this.#delayQueues.get(queue) ?? [];
  }

  /** The job group queues of a queue declared by this provider. */
  groupQueues(queue: string): Iterable<string> {
    return this.#groupQueues.get(queue) ?? [];
  }

  /** The queue (priorities, dead-lettering into its DLQ) and its DLQ. */
  async declare(queue: string): Promise<void> {
    if (this.#declared.has(queue)) return;
    await this.#assert(queue, {
      durable: true,
      arguments: {
        'x-max-priority': maxPriority,
        'x-dead-letter-exchange': '',
        'x-dead-letter-routing-key': deadQueueName(queue),
      },
    });
    await this.#assert(deadQueueName(queue), { durable: true });
    this.#declared.add(queue);
  }

  /** A job group's queue (with a state store): priorities like the main queue. */
  async declareGroup(queue: string, group: string): Promise<string> {
    const name = groupQueueName(queue, group);
    if (this.#declared.has(name)) return name;
    await this.#assert(name, groupQueueOptions());
    this.#declared.add(name);
    remember(this.#groupQueues, queue, name);
    return name;
  }

  /** Ready messages of a job group's queue (an idempotent declare with its arguments carries it). */
  async groupReadyCount(queue: string, group: string): Promise<number> {
    return (await this.#assert(groupQueueName(queue, group), groupQueueOptions())).messageCount;
  }

  /**
   * A TTL queue that dead-letters into `target` (the queue, or a group's queue) after `delayMs`
   * (rounded up to a bucket).
   */
  async delayQueue(queue: string, delayMs: number, target = queue): Promise<string> {
    const bucket = delayBucket(delayMs);
    const name = `${target}.delay.${bucket}`;
    const last = this.#delayDeclares.get(name);
    if (last && performance.now() - last.sentAt < delayQueueRenewMs(this.#delayQueueIdleMs)) {
      await last.done;
      return name;
    }
    const declare = {
      sentAt: performance.now(),
      done: this.#assert(name, {
        durable: true,
        arguments: {
          'x-message-ttl': bucket,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': target,
          'x-expires': bucket + this.#delayQueueIdleMs,
        },
      }).then(() => undefined),
    };
    this.#delayDeclares.set(name, declare);
    try {
      await declare.done;
    } catch (error) {
      if (this.#delayDeclares.get(name) === declare) this.#delayDeclares.delete(name);
      throw error;
    }
    remember(this.#delayQueues, queue, name);
    return name;
  }
}

/** AMQP reply codes of a channel-level refusal (the connection stays up). */
const channelRefusals = new Set([403, 404, 405, 406]);

/** A declare the broker refused, as {@link BrokerRefusedError}; anything else as it came. */
function refusal(error: unknown, queue: string): unknown {
  const { code } = error as { code?: unknown };
  if (typeof code !== 'number' || !channelRefusals.has(code)) return error;
  const message = error instanceof Error ? error.message : String(error);
  // amqplib: 'Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "…"'.
  const reason = /with message "(.*)"$/s.exec(message)?.[1] ?? message;
  return new BrokerRefusedError(queue, 'declare', code, reason);
}

function remember(known: Map<string, Set<string>>, queue: string, name: string): void {
  let names = known.get(queue);
  if (!names) {
    names = new Set();
    known.set(queue, names);
  }
  names.add(name);
}
