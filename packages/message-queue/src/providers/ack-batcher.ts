/** The part of an amqplib channel the batcher writes to (a fake one in tests). */
export interface AckChannel<Message> {
  ack(message: Message, allUpTo?: boolean): void;
  nack(message: Message, allUpTo?: boolean, requeue?: boolean): void;
}

/** One delivery of a channel, from `track` until it is acknowledged or rejected. */
export interface TrackedDelivery<Message> {
  readonly message: Message;
  /** `pending`: running; `done`: ack queued for the next flush; `settled`: acked or nacked on the wire. */
  state: 'pending' | 'done' | 'settled';
}

/**
 * Batches the acknowledgements of one AMQP channel: completed deliveries are queued and, once
 * per tick, the longest run of completed deliveries at the head of the channel's unacknowledged
 * window is acknowledged with a single `basic.ack(multiple)` frame; deliveries completed out
 * of order behind a still-running one are acknowledged individually in the same flush, so a
 * slow job never holds the prefetch window. A `multiple` ack is only ever sent for a tag that
 * is itself unacknowledged and covers only completed deliveries (a running one before it would
 * have stopped the run), so at-least-once holds. One frame per tick instead of one per message
 * saves a socket write per job on our side and a frame per job on the broker's.
 */
export class AckBatcher<Message> {
  readonly #channel: AckChannel<Message>;
  readonly #schedule: (flush: () => void) => void;
  /**
   * Unsettled deliveries in delivery (= tag) order, from `#head`. Slots behind the head are
   * cleared, so a settled delivery (its message and content buffer) is garbage at once instead
   * of surviving young-generation collections until the next compaction.
   */
  #window: (TrackedDelivery<Message> | undefined)[] = [];
  #head = 0;
  #done = 0;
  #scheduled = false;
  readonly #flush = (): void => this.flush();
  /** Called once every tracked delivery is settled (see `whenSettled`). */
  #onSettled: (() => void) | undefined;

  /**
   * @param schedule runs the flush at the end of the current tick (default `process.nextTick`,
   * which, called from a promise callback, runs after every queued promise callback).
   */
  constructor(channel: AckChannel<Message>, schedule: (flush: () => void) => void = process.nextTick) {
    this.#channel = channel;
    this.#schedule = schedule;
  }

  /** Deliveries neither acknowledged nor rejected yet (queued acks included). */
  get unsettled(): number {
    let count = 0;
    for (let index = this.#head; index < this.#window.length; index += 1) {
      if (this.#window[index]!.state !== 'settled') count += 1;
    }
    return count;
  }

  /**
   * Calls `callback` once no tracked delivery is left unsettled: now if none is, else after the
   * flush or rejection that settles the last one (e.g. to close a cancelled consumer's channel
   * once the jobs still running from it are acknowledged).
   */
  whenSettled(callback: () => void): void {
    if (this.unsettled === 0) callback();
    else this.#onSettled = callback;
  }

  /** Registers a delivery; call in delivery order (the broker's tag order on this channel). */
  track(message: Message): TrackedDelivery<Message> {
    const delivery: TrackedDelivery<Message> = { message, state: 'pending' };
    this.#window.push(delivery);
    return delivery;
  }

  /** Queues the acknowledgement of a delivery for this tick's flush. */
  ack(delivery: TrackedDelivery<Message>): void {
    if (delivery.state !== 'pending') return;
    delivery.state = 'done';
    this.#done += 1;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(this.#flush);
    }
  }

  /** Rejects a delivery now (`requeue`: back to the queue; else dead-lettered by the broker). */
  nack(delivery: TrackedDelivery<Message>, requeue: boolean): void {
    if (delivery.state === 'settled') return;
    if (delivery.state === 'done') {
      // Completed but not flushed: acknowledge instead; the job ran.
      this.flush();
      return;
    }
    delivery.state = 'settled';
    this.#channel.nack(delivery.message, false, requeue);
    this.#compact();
  }

  /** Sends the queued acknowledgements (normally called once per tick by itself). */
  flush(): void {
    this.#scheduled = false;
    if (this.#done === 0) return;
    let last: TrackedDelivery<Message> | undefined;
    let run = 0;
    while (this.#head < this.#window.length) {
      const delivery = this.#window[this.#head]!;
      if (delivery.state === 'pending') break;
      if (delivery.state === 'done') {
        delivery.state = 'settled';
        last = delivery;
        run += 1;
      }
      this.#window[this.#head] = undefined;
      this.#head += 1;
    }
    if (last) this.#channel.ack(last.message, run > 1);
    this.#done -= run;
    for (let index = this.#head; this.#done > 0 && index < this.#window.length; index += 1) {
      const delivery = this.#window[index]!;
      if (delivery.state !== 'done') continue;
      delivery.state = 'settled';
      this.#done -= 1;
      this.#channel.ack(delivery.message, false);
    }
    this.#compact();
  }

  #compact(): void {
    while (this.#head < this.#window.length && this.#window[this.#head]!.state === 'settled') {
      this.#window[this.#head] = undefined;
      this.#head += 1;
    }
    if (this.#head === this.#window.length) {
      // Everything settled (the usual case after a flush): start over in the same array.
      this.#window.length = 0;
      this.#head = 0;
      const onSettled = this.#onSettled;
      this.#onSettled = undefined;
      onSettled?.();
    } else if (this.#head > 1_024 && this.#head * 2 > this.#window.length) {
      this.#window = this.#window.slice(this.#head);
      this.#head = 0;
    }
  }
}
