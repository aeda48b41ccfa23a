interface Batch<I, O> {
  items: I[];
  weight: number;
  /** The settling functions of each `add`ed item, at the item's index (none for a joined one). */
  settle: ({ resolve: (value: O) => void; reject: (error: unknown) => void } | undefined)[];
  /** The promise of all the batch's results, made for the first {@link TickBatcher.join}. */
  shared: Shared<O> | undefined;
}

/** A promise and its settling functions (`Promise.withResolvers`, which ES2023 lacks). */
interface Shared<O> {
  promise: Promise<O[]>;
  resolve: (results: O[]) => void;
  reject: (error: unknown) => void;
}

function shared<O>(): Shared<O> {
  let resolve!: (results: O[]) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<O[]>((settle, fail) => {
    resolve = settle;
    reject = fail;
  });
  return { promise, resolve, reject };
}

/** A {@link TickBatcher.join}ed item: its batch's results, and where its own is among them. */
export interface BatchSlot<O> {
  results: Promise<O[]>;
  index: number;
}

/**
 * Coalesces calls made in the same event-loop turn into one batch (DataLoader-style): the
 * first `add` schedules a flush with `setImmediate`, so every call issued while the current
 * I/O callbacks and their promise chains run joins it. 32 concurrent cache reads become two
 * 16-key MGETs, two deadline timers and two breaker calls instead of 32 of each. A batch also flushes
 * early at `maxItems` items or `maxWeight` (e.g. bytes), so large writes go out while the next
 * ones are still being encoded and Redis works in parallel with us.
 */
export class TickBatcher<I, O> {
  readonly #flush: (items: I[]) => Promise<O[]>;
  readonly #maxItems: number;
  readonly #maxWeight: number;
  #current: Batch<I, O> | undefined;

  /** `flush` must return one result per item, in order. */
  constructor(flush: (items: I[]) => Promise<O[]>, maxItems = 256, maxWeight = Number.POSITIVE_INFINITY) {
    this.#flush = flush;
    this.#maxItems = maxItems;
    this.#maxWeight = maxWeight;
  }

  /** Queues `item` (of `weight`, default 1) for the current batch. */
  add(item: I, weight = 1): Promise<O> {
    const batch = this.#gathering();
    // At the item's own index: joined items have no entry (see `#run`).
    const index = batch.items.length;
    const promise = new Promise<O>((resolve, reject) => {
      batch.settle[index] = { resolve, reject };
    });
    this.#push(batch, item, weight);
    return promise;
  }

  /**
   * {@link add} without a promise per item: the caller awaits the batch's one promise of all
   * results (rejected as every `add` of the batch is) and takes its own at `index`. On a hot
   * path of one `await` per item, this saves each item a promise, its resolvers and the
   * microtask that settled it (see `RedisTier.joinRead`).
   */
  join(item: I, weight = 1): BatchSlot<O> {
    const batch = this.#gathering();
    batch.shared ??= shared<O>();
    const slot: BatchSlot<O> = { results: batch.shared.promise, index: batch.items.length };
    this.#push(batch, item, weight);
    return slot;
  }

  /** The batch being gathered in this turn, begun (and its flush scheduled) when there is none. */
  #gathering(): Batch<I, O> {
    if (this.#current !== undefined) return this.#current;
    const created: Batch<I, O> = { items: [], weight: 0, settle: [], shared: undefined };
    this.#current = created;
    setImmediate(() => this.#run(created));
    return created;
  }

  #push(batch: Batch<I, O>, item: I, weight: number): void {
    batch.items.push(item);
    batch.weight += weight;
    if (batch.items.length >= this.#maxItems || batch.weight >= this.#maxWeight) this.#run(batch);
  }

  /** Sends the batch being gathered now, without waiting for the end of the turn. */
  flush(): void {
    if (this.#current !== undefined) this.#run(this.#current);
  }

  #run(batch: Batch<I, O>): void {
    if (this.#current === batch) this.#current = undefined;
    if (batch.items.length === 0) return;
    const { items, settle, shared } = batch;
    batch.items = [];
    batch.weight = 0;
    batch.settle = [];
    batch.shared = undefined;
    this.#flush(items).then(
      (results) => {
        shared?.resolve(results);
        for (let index = 0; index < settle.length; index += 1) settle[index]?.resolve(results[index]!);
      },
      (error: unknown) => {
        shared?.reject(error);
        for (const waiter of settle) waiter?.reject(error);
      },
    );
  }
}
