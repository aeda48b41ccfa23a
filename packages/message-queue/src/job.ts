import { publishJobEvent } from './events.js';
import type { ChildrenResults, JobErrorEntry, JobRecord } from './job-record.js';
import type { QueueProvider } from './provider.js';

/**
 * Where a {@link Job} gets its signal on first use (the worker creates the `AbortController`
 * only for handlers that read `job.signal`, or when it aborts the try).
 */
export interface JobSignalSource {
  readonly signal: AbortSignal;
}

/** The job a handler receives: its payload, its try number, its abort signal and helpers. */
export class Job<Data = unknown> {
  readonly id: string;
  readonly name: string;
  readonly data: Data;
  /** Failed tries before this one. */
  readonly attemptsMade: number;
  /** Total tries allowed. */
  readonly attempts: number;
  readonly priority: number;
  readonly group: string | undefined;
  readonly createdAt: number;
  /** Errors of earlier tries, oldest first. */
  readonly errors: readonly JobErrorEntry[];
  readonly #signal: AbortSignal | JobSignalSource;
  readonly #queue: string;
  readonly #provider: QueueProvider;

  /** @param signal the try's signal, or a source that makes it on first use. */
  constructor(
    queue: string,
    provider: QueueProvider,
    record: JobRecord,
    signal: AbortSignal | JobSignalSource,
  ) {
    this.#queue = queue;
    this.#provider = provider;
    this.id = record.id;
    this.name = record.name;
    this.data = record.data as Data;
    this.attemptsMade = record.attemptsMade;
    this.attempts = record.attempts;
    this.priority = record.priority;
    this.group = record.group;
    this.createdAt = record.createdAt;
    this.errors = record.errors;
    this.#signal = signal;
  }

  /**
   * Aborts when the job times out, is cancelled, the worker closes before it finishes, or the
   * worker loses the job's lease (another worker may run it); its `reason` says which
   * ({@link JobTimeoutError}, {@link JobCancelledError}, {@link WorkerClosingError},
   * {@link LeaseLostError}).
   */
  get signal(): AbortSignal {
    const signal = this.#signal;
    return signal instanceof AbortSignal ? signal : signal.signal;
  }

  /** This try's number, from 1. */
  get attempt(): number {
    return this.attemptsMade + 1;
  }

  /** Stores progress (any JSON value), readable by `queue.getJob(id).progress`. */
  async progress(value: unknown): Promise<void> {
    await this.#provider.setProgress(this.#queue, this.id, value);
    publishJobEvent('progress', { queue: this.#queue, jobId: this.id, name: this.name, progress: value });
  }

  /** For a flow parent: the results of its children (and failures, under policy `continue`). */
  async childrenResults(): Promise<ChildrenResults> {
    return this.#provider.childrenResults(this.#queue, this.id);
  }
}
