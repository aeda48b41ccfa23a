import type { Logger } from '@noa/core';
import type { ConsumeMessage } from 'amqplib';
import type { AckBatcher, TrackedDelivery } from '../ack-batcher.js';

/** A message delivered to one of the provider's consumers, until it is acknowledged or rejected. */
export interface Delivery {
  tracked: TrackedDelivery<ConsumeMessage>;
  acks: AckBatcher<ConsumeMessage>;
  /** The connection generation it came on (see `AmqpConnection.generation`). */
  generation: number;
  /** The job group whose queue it came from (with a state store). */
  group?: string;
  /** With a state store, once it runs: its try's lease (its message's token, or a takeover's lease). */
  lease?: string;
  /** Its group's count of deliveries not yet acknowledged or rejected (see `settled`). */
  outstanding?: { count: number };
}

/** A delivery is being acknowledged or rejected: its group has one outstanding fewer. */
export function settled(delivery: Delivery): void {
  if (delivery.outstanding) delivery.outstanding.count -= 1;
  delete delivery.outstanding;
}

/**
 * Rejects a delivery that is no job (see `decodeMessage`) without requeueing it: the broker
 * moves it to the queue's DLQ (`<queue>.dead`; a group queue has none and drops it). Left in
 * place it would fail every fetch of the queue.
 */
export function rejectUndecodable(delivery: Delivery, queue: string, logger: Logger): void {
  logger.warn('a message on the queue is not a job; rejected to its dead-letter queue', {
    queue,
    bytes: delivery.tracked.message.content.length,
  });
  settled(delivery);
  delivery.acks.nack(delivery.tracked, false);
}

/** Runs a batcher's flush at the end of the tick; a channel that died meanwhile was requeued by the broker. */
export function endOfTick(flush: () => void): void {
  process.nextTick(() => {
    try {
      flush();
    } catch {
      // The channel closed: its unacknowledged deliveries are redelivered (at-least-once).
    }
  });
}

/** The deliveries whose jobs this process's workers run, by queue and job id. */
export class HeldDeliveries {
  readonly #held = new Map<string, Delivery>();
  readonly #generation: () => number;

  /** @param generation the current connection generation. */
  constructor(generation: () => number) {
    this.#generation = generation;
  }

  has(queue: string, id: string): boolean {
    return this.#held.has(key(queue, id));
  }

  /** Holds a delivery for a job; returns the one held for it before, if any. */
  hold(queue: string, id: string, delivery: Delivery): Delivery | undefined {
    const held = key(queue, id);
    const previous = this.#held.get(held);
    this.#held.set(held, delivery);
    return previous;
  }

  /**
   * A redelivery of a job that this process still runs from a channel that is gone (the broker
   * closed it, e.g. on its `consumer_timeout`, or the connection dropped): the running try's
   * outcome settles the new delivery instead of running the job a second time here. Returns
   * false when no such try is held.
   */
  rebind(queue: string, id: string, delivery: Delivery): boolean {
    const held = key(queue, id);
    const previous = this.#held.get(held);
    if (!previous || previous.generation === delivery.generation) return false;
    this.#held.set(held, delivery);
    return true;
  }

  /**
   * Forgets the held delivery of a job and returns it, unless its channel is gone (the broker
   * has requeued or redelivered it already: at-least-once).
   */
  take(queue: string, id: string): Delivery | undefined {
    const delivery = this.takeAny(queue, id);
    return delivery?.generation === this.#generation() ? delivery : undefined;
  }

  /** The held delivery of a job, if any, kept held. */
  peek(queue: string, id: string): Delivery | undefined {
    return this.#held.get(key(queue, id));
  }

  /** Forgets the held delivery of a job and returns it, whether or not its channel is gone. */
  takeAny(queue: string, id: string): Delivery | undefined {
    const held = key(queue, id);
    const delivery = this.#held.get(held);
    this.#held.delete(held);
    return delivery;
  }

  /** How many deliveries of a queue are held. */
  count(queue: string): number {
    const prefix = `${queue}\u0000`;
    let count = 0;
    for (const held of this.#held.keys()) if (held.startsWith(prefix)) count += 1;
    return count;
  }
}

function key(queue: string, id: string): string {
  return `${queue}\u0000${id}`;
}
