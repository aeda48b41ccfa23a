interface Batch<I, O> {
  items: I[];
  weight: number;
  settle: { resolve: (value: O) => void; reject: (error: unknown) => void }[];
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
    let batch = this.#current;
    if (batch === undefined) {
      const created: Batch<I, O> = { items: [], weight: 0, settle: [] };
      batch = created;
      this.#current = created;
      setImmediate(() => this.#run(created));
    }
    const promise = new Promise<O>((resolve, reject) => batch.settle.push({ resolve, reject }));
    batch.items.push(item);
    batch.weight += weight;
    if (batch.items.length >= this.#maxItems || batch.weight >= this.#maxWeight) this.#run(batch);
    return promise;
  }

  /** Sends the batch being gathered now, without waiting for the end of the turn. */
  flush(): void {
    if (this.#current !== undefined) this.#run(this.#current);
  }

  #run(batch: Batch<I, O>): void {
    if (this.#current === batch) this.#current = undefined;
    if (batch.items.length === 0) return;
    const { items, settle } = batch;
    batch.items = [];
    batch.weight = 0;
    batch.settle = [];
    this.#flush(items).then(
      (results) => {
        for (let index = 0; index < settle.length; index += 1) settle[index]!.resolve(results[index]!);
      },
      (error: unknown) => {
        for (const waiter of settle) waiter.reject(error);
      },
    );
  }
}
