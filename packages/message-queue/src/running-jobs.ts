import type { JobSignalSource } from './job.js';
import type { JobRecord } from './job-record.js';
import type { TimeoutEntry } from './timeout-sweep.js';

/**
 * One try in a worker's slot. Its `AbortController` is made only when the handler reads
 * `job.signal` or the try is aborted: most handlers never look, and a controller with its
 * signal is the largest allocation of a try.
 */
export class RunningJob implements JobSignalSource, TimeoutEntry {
  readonly record: JobRecord;
  /** `performance.now()` at start; 0 when nothing measures run times. */
  readonly startedAt: number;
  done = false;
  timeoutDeadline = 0;
  timeoutPrevious: TimeoutEntry | undefined;
  timeoutNext: TimeoutEntry | undefined;
  timeoutList: TimeoutEntry['timeoutList'];
  /** The handler's value when it returned synchronously (see `outcome`). */
  value: unknown;
  /** `'sync-result'` / `'sync-error'`: the handler returned or threw without a promise. */
  outcome: 'pending' | 'sync-result' | 'sync-error' = 'pending';
  /** Index in its {@link RunningJobs} table, -1 when not in one. */
  slot = -1;
  /** `performance.now()` when the fetch that leased it was sent, for its lease's local expiry. */
  leasedAt = 0;
  /** The worker gave up its lease (see `LeaseLostError`): its signal is aborted. */
  leaseLost = false;
  /** It gave it up because the lease expired ('expired': the try stalled past `leaseMs`). */
  leaseExpired = false;
  #controller: AbortController | undefined;

  constructor(record: JobRecord, startedAt: number) {
    this.record = record;
    this.startedAt = startedAt;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  /** Aborts the signal (made now if the handler has not read it yet, so a later read sees the reason). */
  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    this.#controller.abort(reason);
  }
}

/**
 * The tries a worker is running, in reusable slots. A `Map` keyed by job id would grow and
 * shrink its hash table (allocating a new one each time) as a batch of jobs starts and
 * finishes; slots are reused instead, and the rare lookups by id scan at most `concurrency`
 * entries.
 */
export class RunningJobs {
  readonly #slots: (RunningJob | undefined)[] = [];
  readonly #free: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(running: RunningJob): void {
    const slot = this.#free.pop() ?? this.#slots.length;
    this.#slots[slot] = running;
    running.slot = slot;
    this.#size += 1;
  }

  /** Removes a try (no-op if it is not in the table). */
  delete(running: RunningJob): void {
    const { slot } = running;
    if (slot < 0 || this.#slots[slot] !== running) return;
    this.#slots[slot] = undefined;
    running.slot = -1;
    this.#free.push(slot);
    this.#size -= 1;
  }

  /** The running tries of a job id (normally one; two if a redelivered copy runs meanwhile). */
  byId(id: string): RunningJob[] {
    return this.values().filter((running) => running.record.id === id);
  }

  values(): RunningJob[] {
    const values: RunningJob[] = [];
    for (const running of this.#slots) if (running) values.push(running);
    return values;
  }
}
