interface Batch<I, O> {
  items: I[];
  settle: { resolve: (value: O) => void; reject: (error: unknown) => void }[];
}

/**
 * Coalesces calls made in the same event-loop turn into one batch (DataLoader-style): the
 * first `add` schedules a flush with `setImmediate`, so every call issued while the current
 * I/O callbacks and their promise chains run joins it. 32 concurrent cache reads become one
 * MGET, one deadline timer and one breaker call instead of 32 of each.
 */
export class TickBatcher<I, O> {
  readonly #flush: (items: I[]) => Promise<O[]>;
  readonly #maxBatch: number;
  #current: Batch<I, O> | undefined;

  /** `flush` must return one result per item, in order. */
  constructor(flush: (items: I[]) => Promise<O[]>, maxBatch = 256) {
    this.#flush = flush;
    this.#maxBatch = maxBatch;
  }

  add(item: I): Promise<O> {
    let batch = this.#current;
    if (batch === undefined) {
      const created: Batch<I, O> = { items: [], settle: [] };
      batch = created;
      this.#current = created;
      setImmediate(() => this.#run(created));
    }
    const promise = new Promise<O>((resolve, reject) => batch.settle.push({ resolve, reject }));
    batch.items.push(item);
    if (batch.items.length >= this.#maxBatch) this.#run(batch);
    return promise;
  }

  #run(batch: Batch<I, O>): void {
    if (this.#current === batch) this.#current = undefined;
    if (batch.items.length === 0) return;
    const { items, settle } = batch;
    batch.items = [];
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
