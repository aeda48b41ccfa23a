import { EventEmitter } from 'node:events';
import {
  type Clock,
  childLogger,
  type GaugeVote,
  type HealthReport,
  type Logger,
  maxTimerMs,
  parseOptions,
  silentLogger,
  withDeadline,
} from '@noa/core';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { type BackendDown, BackendHealth, type BackendState, type BackendUp } from './backend-health.js';
import { type BackoffStrategy, backoffDelay } from './backoff.js';
import { cutText } from './error-history.js';
import {
  BackendUnavailableError,
  JobCancelledError,
  JobTimeoutError,
  type LeaseLossReason,
  LeaseLostError,
  ResultNotSerializableError,
  ResultTooLargeError,
  WorkerClosingError,
} from './errors.js';
import { jobEvents, publishJobEvent } from './events.js';
import { workerHealth } from './health.js';
import { Job } from './job.js';
import { wellFormedString } from './job-options.js';
import type { JobErrorEntry, JobRecord } from './job-record.js';
import type { Jsonified } from './jsonified.js';
import { createQueueMetrics, type QueueMetrics } from './metrics.js';
import { autoPrefetch, movingAverage } from './prefetch.js';
import type {
  DeadLetteredParent,
  OversizedSettlement,
  QueueProvider,
  RetentionPolicy,
  Settlement,
  StalledReleaseResult,
} from './provider.js';
import { Queue, retentionSchema } from './queue.js';
import { RunningJob, RunningJobs } from './running-jobs.js';
import { TimeoutSweep } from './timeout-sweep.js';

/** How many errors a job keeps in its history (the newest). */
const maxErrorHistory = 20;
/**
 * The longest error message (UTF-16 units) an error-history entry keeps; a longer one is cut
 * and says so. Unbounded, an error made the retry's record too big for the backend (a Redis
 * argument past `proto-max-bulk-len`), which refused every exchange carrying it: the worker ran
 * nothing more. With it, a record's history is bounded (`maxErrorHistory` entries of this).
 */
const maxErrorMessageLength = 16_384;

/** Options of {@link Worker}. */
export const workerOptionsSchema = z
  .object({
    /** The queue to consume (its provider, name and clock are used). */
    queue: z.custom<Queue<unknown>>((value) => value instanceof Queue, { message: 'expected a Queue' }),
    /** The handler: resolve to complete (the value is stored as the result), throw to fail the try. */
    handler: z.custom<(job: Job<unknown>) => unknown>((value) => typeof value === 'function'),
    /** Jobs run at once by this worker. */
    concurrency: z.number().int().positive().max(10_000).default(1),
    /**
     * Jobs leased ahead of free slots and started the moment a slot frees, without waiting for a
     * round trip (like AMQP prefetch). They hold leases meanwhile; `close()` releases them.
     * `'auto'` (default): while handlers run shorter on average than a round trip to the backend,
     * as many as run during one round trip (at most `max(concurrency, 16)`); none otherwise
     * (and until the first job has finished), so slow jobs are never held ahead.
     */
    prefetch: z.union([z.number().int().nonnegative().max(10_000), z.literal('auto')]).default('auto'),
    /**
     * Lease of a fetched job, renewed every `leaseMs / 3`: a worker that stops heart-beating for
     * this long loses its jobs to others (on RabbitMQ without a state store only its lost
     * connection does), and when a renewal goes unanswered this long or is
     * refused, the handler's `job.signal` aborts with `LeaseLostError`.
     */
    leaseMs: z.number().int().min(100).max(maxTimerMs).default(30_000),
    /**
     * A backend call (exchange, lease renewal, maintenance) unanswered this long, with nothing
     * else answered meanwhile, marks the backend unavailable: one `error` event
     * (`BackendUnavailableError`) and a warning per outage, `backend_up` 0, until a call is
     * answered (logged with the outage's length). A call that fails does the same at once. The
     * calls are not abandoned: they wait for the backend (ioredis's offline queue). A lease
     * renewal answered without the backend (`LeaseRenewal.backendDown`) counts neither way.
     */
    backendTimeoutMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /** Time limit of each try when the job has no `timeout`. */
    defaultTimeoutMs: z.number().int().positive().max(maxTimerMs).optional(),
    /** How long `close()` waits for in-flight jobs before releasing them for redelivery. */
    closeTimeoutMs: z.number().int().nonnegative().max(maxTimerMs).default(10_000),
    /**
     * How long `close()` then waits for the backend (the last exchange, the release): a round
     * trip when it is up, so this only bounds a backend that does not answer (Redis down under
     * `maxRetriesPerRequest: null`); past it the jobs are left to their leases. Not tied to
     * `closeTimeoutMs`, which is about handlers (`close(0)` must still give the jobs back).
     */
    backendCloseTimeoutMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /**
     * A job whose lease expires more than this many times is dead-lettered (poison job). Not on
     * RabbitMQ without a state store: nothing counts stalls there, and such a job is redelivered
     * for ever.
     */
    maxStalls: z.number().int().nonnegative().default(3),
    /** Longest idle wait between fetches when no notification arrives. */
    pollIntervalMs: z.number().int().positive().max(maxTimerMs).default(1_000),
    /** How often this worker recovers stalled jobs and applies retention (a busy one also after every 1,000 settled jobs). */
    maintenanceIntervalMs: z.number().int().positive().max(maxTimerMs).default(5_000),
    /** Delayed jobs are promoted at most this often while the queue is busy (always when idle). */
    promoteIntervalMs: z.number().int().positive().default(50),
    retention: retentionSchema.default(retentionSchema.parse({})),
    /** Weighted fair dispatch between job groups (tenants); unlisted groups get `defaultWeight`. */
    groups: z
      .object({
        weights: z.record(wellFormedString, z.number().positive()).default({}),
        defaultWeight: z.number().positive().default(1),
      })
      .strict()
      .default({ weights: {}, defaultWeight: 1 }),
    /** Adjusts concurrency to queue depth: `ceil(waiting / jobsPerSlot)` clamped to [min, max]. */
    autoscale: z
      .object({
        min: z.number().int().positive().default(1),
        max: z.number().int().positive(),
        jobsPerSlot: z.number().positive().default(10),
        intervalMs: z.number().int().positive().max(maxTimerMs).default(1_000),
      })
      .strict()
      .refine((autoscale) => autoscale.min <= autoscale.max, {
        message: 'must be at least autoscale.min',
        path: ['max'],
      })
      .optional(),
    /** Named strategies for `backoff: { type: 'custom', strategy }`. */
    backoffStrategies: z
      .record(
        z.string(),
        z.custom<BackoffStrategy>((value) => typeof value === 'function'),
      )
      .default({}),
    /** Start consuming at construction (default) or on `start()`. */
    autostart: z.boolean().default(true),
    /** Random source for backoff jitter (injected in tests). */
    random: z.custom<() => number>((value) => typeof value === 'function').default(() => Math.random),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).default(silentLogger),
    registry: z.custom<Registry>((value) => typeof value === 'object' && value !== null).optional(),
  })
  .strict();

/** Options of {@link Worker}, typed by the queue's payload and the handler's result. */
export type WorkerOptions<Data, Result> = Omit<z.input<typeof workerOptionsSchema>, 'queue' | 'handler'> & {
  queue: Queue<Data>;
  /** `job.data` is typed as it arrives: JSON-decoded (a `Date` field is a string; see {@link Jsonified}). */
  handler: (job: Job<Jsonified<Data>>) => Promise<Result> | Result;
};

/** A finished try not stored yet; for a failed one, what to report once it is. */
interface PendingSettlement {
  settlement: Settlement;
  /** Its try had lost its lease (counted in `leases_lost_total` then, not again if refused). */
  leaseLost?: boolean;
  error?: Error;
  attempt?: number;
  terminal?: boolean;
  /** The provider kept it for the job's redelivery (see `ExchangeResponse.awaitingRedelivery`). */
  awaitedRedelivery?: boolean;
}

/**
 * Events a worker emits (also published on diagnostics channels), each once the outcome is
 * stored: after `completed`, `getJob` shows the job completed. `completed` carries the handler's
 * own return value (typed `Result`, the worker's), not its stored JSON form.
 */
export interface WorkerEvents<Result = unknown> {
  completed: [jobId: string, result: Result];
  failed: [jobId: string, error: Error, willRetry: boolean];
  error: [error: Error];
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * What a handler threw, as an Error. A thrown non-Error keeps what it says: an object's string
 * `message`, `name` and `code` (a plain `{ code, message }` is common), else its JSON or text. A
 * value that cannot even be read (a throwing getter, a revoked proxy) becomes an Error saying so:
 * this runs while the try is settled, where a throw would lose the try (see `#failTry`).
 */
function toError(thrown: unknown): Error {
  try {
    if (thrown instanceof Error) return thrown;
    if (typeof thrown !== 'object' || thrown === null) return new Error(String(thrown));
    const { message, name, code } = thrown as { message?: unknown; name?: unknown; code?: unknown };
    const error = new Error(typeof message === 'string' ? message : asText(thrown, '[unreadable]'), {
      cause: thrown,
    }) as Error & { code?: string };
    if (typeof name === 'string') error.name = name;
    if (typeof code === 'string') error.code = code;
    return error;
  } catch (unreadable) {
    return new Error(`the handler threw a value that cannot be read (${readError(unreadable)})`, {
      cause: thrown,
    });
  }
}

/** `value` as text: a string as is, else its JSON, else `String(value)`, else `fallback`. */
function asText(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // Not JSON (a BigInt, a cycle): its text, below.
  }
  try {
    return String(value);
  } catch {
    return fallback;
  }
}

/** The message of an error met while reading a thrown value, as text whatever it is. */
function readError(error: unknown): string {
  try {
    return asText(error instanceof Error ? error.message : error, 'unreadable');
  } catch {
    return 'unreadable';
  }
}

/** A property of a thrown error, or undefined when reading it throws (a getter). */
function readProperty(error: Error, key: 'name' | 'message' | 'code'): unknown {
  try {
    return (error as unknown as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/**
 * The history entry of a failed try. Its fields are text whatever the error holds (an Error's
 * `message` set to a number, a `name` that is not a string): a backend stores them as JSON, and
 * cutting them (`cutText`) needs strings.
 */
function errorEntry(error: Error, attempt: number, at: number): JobErrorEntry {
  const entry: JobErrorEntry = {
    attempt,
    name: asText(readProperty(error, 'name') ?? 'Error', 'Error'),
    message: boundedMessage(asText(readProperty(error, 'message'), '')),
    at,
  };
  const code = readProperty(error, 'code');
  if (typeof code === 'string') entry.code = code;
  return entry;
}

/** The message cut to `maxErrorMessageLength` (not inside a surrogate pair), saying so. */
function boundedMessage(message: string): string {
  return cutText(message, maxErrorMessageLength);
}

/**
 * Marks terminal the failed tries the backend dead-lettered although the worker asked for a
 * retry (see `ExchangeResponse.deadLettered`): their events and metrics say what was stored.
 */
function markDeadLettered(settle: PendingSettlement[], ids: readonly string[]): void {
  const deadLettered = new Set(ids);
  for (const item of settle) {
    if (item.settlement.kind === 'fail' && deadLettered.has(item.settlement.record.id)) item.terminal = true;
  }
}

/** Why `result` cannot be stored as JSON, or undefined if it can. */
function unencodable(result: unknown): unknown {
  if (result === undefined) return undefined;
  try {
    JSON.stringify(result);
    return undefined;
  } catch (error) {
    return error ?? new Error('JSON.stringify threw');
  }
}

/**
 * Consumes one queue: leases jobs in batches, runs the handler with a concurrency limit and a
 * per-try timeout, retries with backoff, dead-letters after the last attempt, heart-beats its
 * leases, recovers jobs of dead workers and closes gracefully.
 */
export class Worker<Data = unknown, Result = unknown> extends EventEmitter {
  readonly queueName: string;

  // The events are typed by these overrides over an untyped EventEmitter, not by
  // `EventEmitter<WorkerEvents>`: a recent @types/node (26) lets any name through that generic (listener
  // `any[]`), and narrowing its `on` there fails to compile (TS2416) for a user with
  // `skipLibCheck: false`. Over the untyped base the same overrides compile with @types/node 22
  // to the latest, and an unknown name fails to type-check with each (or with none).

  /** Listens to an event by name (`completed`, `failed`, `error`; see {@link WorkerEvents}). */
  override on<E extends keyof WorkerEvents<Result>>(
    event: E,
    listener: (...args: WorkerEvents<Result>[E]) => void,
  ): this {
    return super.on(event, listener as never);
  }

  /** Listens to the next such event only (see {@link Worker.on}). */
  override once<E extends keyof WorkerEvents<Result>>(
    event: E,
    listener: (...args: WorkerEvents<Result>[E]) => void,
  ): this {
    return super.once(event, listener as never);
  }

  /** Removes a listener (see {@link Worker.on}). */
  override off<E extends keyof WorkerEvents<Result>>(
    event: E,
    listener: (...args: WorkerEvents<Result>[E]) => void,
  ): this {
    return super.off(event, listener as never);
  }

  /** Emits an event with the arguments of its name (see {@link WorkerEvents}). */
  override emit<E extends keyof WorkerEvents<Result>>(event: E, ...args: WorkerEvents<Result>[E]): boolean {
    return super.emit(event, ...args);
  }
  readonly #provider: QueueProvider;
  readonly #clock: Clock;
  readonly #options: z.output<typeof workerOptionsSchema>;
  readonly #handler: (job: Job<Jsonified<Data>>) => Promise<Result> | Result;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  /** The metric labels of this worker (one object, not one per job). */
  readonly #labels: { queue: string };
  readonly #running = new RunningJobs();
  /** Per-try time limits, all on one timer. */
  readonly #timeouts = new TimeoutSweep<RunningJob>((running) => {
    const timeoutMs = running.record.timeoutMs ?? this.#options.defaultTimeoutMs!;
    const error = new JobTimeoutError(running.record.id, timeoutMs);
    running.abort(error);
    this.#fail(running, error);
  });
  /** Tries whose handler returned without a promise, settled together in one microtask. */
  #returned: RunningJob[] = [];
  readonly #settleReturned = (): void => {
    const returned = this.#returned;
    this.#returned = [];
    for (const running of returned) {
      const { value } = running;
      running.value = undefined;
      try {
        if (running.outcome === 'sync-result') this.#complete(running, value);
        else this.#fail(running, value);
      } catch (error) {
        // A throwing 'completed'/'failed' listener: reported as before (an unhandled rejection),
        // without stranding the rest of the batch.
        void Promise.reject(error);
      }
    }
  };
  /** Leased jobs waiting for a free slot (see `prefetch`). */
  #buffer: JobRecord[] = [];
  readonly #retention: RetentionPolicy;
  #concurrency: number;
  /** Finished tries not yet stored, each with the events to emit once it is. */
  #settle: PendingSettlement[] = [];
  /**
   * Finished tries the provider keeps for their job's redelivery (their channel closed), sent
   * again with each exchange until it answers what became of them.
   */
  #awaiting: PendingSettlement[] = [];
  /** Whether run times are measured: for the processing histogram and for `prefetch: 'auto'`. */
  readonly #timed: boolean;
  #wakePump: (() => void) | undefined;
  /** Custom backoff names already warned about (see `#checkStrategy`). */
  readonly #missingStrategies = new Set<string>();
  /** Custom backoff names whose strategy threw, already warned about (see `#retryDelay`). */
  readonly #throwingStrategies = new Set<string>();
  /** Ends the back-off after a failed exchange (only `close()` does). */
  #stopBackoff: (() => void) | undefined;
  /** Aborts the signal of the current idle wait (see `#idle`). */
  #idleController = new AbortController();
  readonly #abortIdle = (): void => this.#idleController.abort();
  /** Whether exchange round trips are timed (only `prefetch: 'auto'` uses them). */
  readonly #measureExchanges: boolean;
  #pumpDone: Promise<void> | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #timers: NodeJS.Timeout[] = [];
  /** An autoscale count is in flight. */
  #autoscaling = false;
  #unsubscribeCancel: (() => void) | undefined;
  #maintaining = false;
  /** Tries settled since the last maintenance pass: a busy worker also trims every 1,000. */
  #settledSinceMaintenance = 0;
  /** Moving averages (ms) of a handler's run time and of an exchange round trip, for `prefetch: 'auto'`. */
  #handlerMs: number | undefined;
  #exchangeMs: number | undefined;
  /** `performance.now()` when the last answered lease renewal was sent (see `#checkLeases`). */
  #renewedAt = 0;
  /** `performance.now()` when the last exchange that leased jobs was sent. */
  #leasedAt = 0;
  /** A lease renewal is in flight (a backend that does not answer gets no pile of them). */
  #renewing = false;
  /** Whether the backend answers (see `backendTimeoutMs`). */
  readonly #health: BackendHealth;
  /** This worker's part of `backend_up` (the queue's workers on the registry report its minimum). */
  readonly #upVote: GaugeVote;
  /** The error of the backend outage under way, for `health()`. */
  #backendError: unknown;

  constructor(options: WorkerOptions<Data, Result>) {
    super();
    const parsed = parseOptions('Worker', workerOptionsSchema, options);
    this.#options = parsed;
    const queue = parsed.queue;
    this.queueName = queue.name;
    this.#labels = { queue: queue.name };
    this.#provider = queue.provider;
    this.#clock = queue.clock;
    this.#handler = options.handler;
    this.#concurrency = parsed.autoscale ? parsed.autoscale.min : parsed.concurrency;
    this.#logger = childLogger(parsed.logger, { component: 'message-queue', queue: queue.name });
    this.#metrics = createQueueMetrics(parsed.registry);
    this.#timed = this.#metrics.enabled || parsed.prefetch === 'auto';
    this.#measureExchanges = parsed.prefetch === 'auto';
    this.#retention = parsed.retention;
    this.#upVote = this.#metrics.backendUp(queue.name);
    this.#health = new BackendHealth(
      parsed.backendTimeoutMs,
      (down) => this.#backendDown(down),
      (up) => this.#backendUp(up),
    );
    // A worker without listeners must not crash the process on a backend hiccup.
    this.on('error', () => {});
    if (parsed.autostart) this.start();
  }

  /** Current concurrency (changes under `autoscale`). */
  get concurrency(): number {
    return this.#concurrency;
  }

  /**
   * Whether the backend answers this worker's calls: true once a call was answered, false before
   * (`backendState` `'unknown'`: not proven up) and from a call that failed or went unanswered for
   * `backendTimeoutMs` until the next answered one (see `backend_up`).
   */
  get backendUp(): boolean {
    return this.#health.up;
  }

  /**
   * What this worker knows of its backend: `'unknown'` until its first call is answered (`'up'`)
   * or fails or goes unanswered for `backendTimeoutMs` (`'down'`); then as `backendUp`.
   */
  get backendState(): BackendState {
    return this.#health.state;
  }

  /**
   * The worker's health, from state it keeps anyway (no backend call): `down` while `backendUp`
   * is false, so also before the backend first answered (`backendState` `'unknown'`, no `cause`:
   * a readiness probe is not ready until the backend is proven up), with `cause` the failed
   * call's error, or `BackendUnavailableError` for one unanswered past `backendTimeoutMs`; and
   * from `close()` on (`ClosedError`); else `up`. `details`: `queue`, `started`, `backendUp`,
   * `backendState`, `activeJobs`, `concurrency`.
   */
  health(): HealthReport {
    return workerHealth({
      queue: this.queueName,
      closing: this.#closing,
      started: this.#pumpDone !== undefined,
      backendState: this.#health.state,
      backendError: this.#backendError,
      activeJobs: this.#running.size,
      concurrency: this.#concurrency,
      now: Date.now(),
    });
  }

  /** Jobs being handled right now. */
  get activeCount(): number {
    return this.#running.size;
  }

  /** Starts consuming (called by the constructor unless `autostart: false`). */
  start(): void {
    if (this.#pumpDone || this.#closing) return;
    // Listen for cancellations before taking any job: a cancel of a job this worker runs is a
    // one-shot message, and one published before the subscription would be lost.
    // Through the health check: a backend down at start is found within backendTimeoutMs (the
    // pump, and with it every other call, waits for this subscription). Its answer proves
    // nothing up: a provider may answer it without its backend (RabbitMQ: nothing to subscribe
    // to without a store, the store's answer with one), and a worker that never reached its
    // broker must not be reported up; the first exchange proves it.
    const listening = this.#call(
      'subscribe to cancellations',
      () => this.#provider.onCancel(this.queueName, (id) => this.#cancelRunning(id)),
      () => false,
    )
      .then((unsubscribe) => {
        if (this.#closing) unsubscribe();
        else this.#unsubscribeCancel = unsubscribe;
      })
      .catch((error: unknown) => {
        // A failure that found the backend down was reported as that (once per outage).
        if (!this.#health.down) this.#reportError('subscribe to cancellations', error);
      });
    this.#pumpDone = listening.then(() => this.#pump());
    const heartbeat = setInterval(
      () => void this.#heartbeat(),
      Math.max(50, Math.floor(this.#options.leaseMs / 3)),
    );
    const maintenance = setInterval(() => void this.maintain(), this.#options.maintenanceIntervalMs);
    this.#timers.push(heartbeat, maintenance);
    heartbeat.unref();
    // Judged one I/O turn later (setImmediate): Node runs due timers before it reads sockets, so
    // after the process was busy (a long synchronous task, a GC pause) a call whose answer
    // already waits in its socket would look unanswered at the timer, a false outage.
    const watchdog = setInterval(
      () => setImmediate(() => this.#health.check(performance.now())),
      Math.max(25, Math.floor(this.#options.backendTimeoutMs / 4)),
    );
    watchdog.unref();
    this.#timers.push(watchdog);
    // The maintenance timer stays ref'd: a started worker keeps the process alive until close(),
    // as a listening server does (with the memory provider nothing else would: a script awaiting
    // a retry's back-off would exit under it).
    if (this.#options.autoscale) {
      this.#timers.push(
        setInterval(() => void this.#autoscale(), this.#options.autoscale.intervalMs).unref(),
      );
    }
  }

  /** A backend call failed or went unanswered: reported once per outage (the rest at debug). */
  #backendDown({ operation, error, timeoutMs }: BackendDown): void {
    const reported =
      error === undefined
        ? new BackendUnavailableError(this.queueName, operation, timeoutMs)
        : error instanceof Error
          ? error
          : new Error(String(error));
    this.#upVote.set(0);
    this.#backendError = reported;
    this.#logger.warn('backend unavailable: calls fail or do not answer; the worker waits and retries', {
      operation,
      error: reported.message,
    });
    this.emit('error', reported);
  }

  #backendUp({ downMs, failedCalls }: BackendUp): void {
    this.#upVote.set(1);
    this.#backendError = undefined;
    this.#logger.info('backend available again', { downMs: Math.round(downMs), failedCalls });
  }

  /**
   * Runs a backend call through the health check: a failure is reported once per outage.
   * `provesUp` says whether an answer came from the backend (default: every answer does).
   */
  async #call<T>(
    operation: string,
    work: () => Promise<T>,
    provesUp: (value: T) => boolean = () => true,
  ): Promise<T> {
    const call = this.#health.begin(operation, performance.now());
    try {
      const value = await work();
      if (!provesUp(value)) {
        this.#health.answered(call, performance.now(), false);
        return value;
      }
      this.#health.answered(call, performance.now());
      // Unknown (no series) until the first answer or the first outage, not 1 from the start.
      this.#upVote.set(1);
      return value;
    } catch (error) {
      const wasDown = this.#health.down;
      this.#health.failed(call, error);
      if (wasDown) this.#logger.debug(`worker could not ${operation}`, { error: String(error) });
      throw error;
    }
  }

  #reportError(operation: string, error: unknown): void {
    const asError = error instanceof Error ? error : new Error(String(error));
    this.#logger.warn(`worker could not ${operation}`, { error: asError.message });
    this.emit('error', asError);
  }

  /** Jobs to hold leased ahead of free slots now (see the `prefetch` option). */
  #prefetch(): number {
    const { prefetch } = this.#options;
    if (prefetch !== 'auto') return prefetch;
    return autoPrefetch(this.#handlerMs, this.#exchangeMs, this.#concurrency);
  }

  #wake(): void {
    const wake = this.#wakePump;
    this.#wakePump = undefined;
    wake?.();
  }

  async #pump(): Promise<void> {
    let lastPromote = Number.NEGATIVE_INFINITY;
    let lastYield = performance.now();
    let idle = true;
    let failures = 0;
    while (true) {
      const want = this.#closing
        ? 0
        : Math.max(0, this.#concurrency + this.#prefetch() - this.#running.size - this.#buffer.length);
      if (want === 0 && this.#settle.length === 0) {
        if (this.#closing && this.#running.size === 0) {
          this.#stopAwaiting();
          return;
        }
        await new Promise<void>((resolve) => {
          this.#wakePump = resolve;
        });
        // Let every handler that finishes in this tick settle first: one exchange carries them all.
        await new Promise<void>((resolve) => process.nextTick(resolve));
        continue;
      }
      const now = this.#clock.now();
      const promoteDelayed = want > 0 && (idle || now - lastPromote >= this.#options.promoteIntervalMs);
      if (promoteDelayed) lastPromote = now;
      const settle = this.#settle;
      this.#settle = [];
      const resent = this.#resendable(settle);
      const sent = resent.length > 0 ? settle.concat(resent) : settle;
      let response: Awaited<ReturnType<QueueProvider['exchange']>>;
      const sentAt = performance.now();
      let answeredAt: number;
      try {
        response = await this.#call('exchange jobs', () =>
          this.#provider.exchange(this.queueName, {
            settle: sent.map((item) => item.settlement),
            fetch: want,
            leaseUntil: now + this.#options.leaseMs,
            now,
            promoteDelayed,
            groupWeights: this.#options.groups.weights,
            defaultGroupWeight: this.#options.groups.defaultWeight,
            ...(this.#options.autoscale ? { window: this.#options.autoscale.max } : {}),
          }),
        );
        failures = 0;
        answeredAt = performance.now();
        if (this.#measureExchanges) this.#exchangeMs = movingAverage(this.#exchangeMs, answeredAt - sentAt);
        const answered = response.awaitingRedelivery
          ? this.#awaitRedelivery(sent, response.awaitingRedelivery)
          : sent;
        if (response.deadLettered) markDeadLettered(answered, response.deadLettered);
        const stored = response.oversized ? this.#oversized(answered, response.oversized) : answered;
        if (response.stale) this.#refused(stored, response.stale);
        else for (const item of stored) this.#persisted(item);
        // After the children whose failure dead-lettered them.
        if (response.parentsDeadLettered) this.#parentsDeadLettered(response.parentsDeadLettered);
        this.#settledSinceMaintenance += settle.length;
        if (this.#settledSinceMaintenance >= 1_000) void this.maintain();
      } catch (error) {
        this.#settle = settle.concat(this.#settle);
        this.#awaiting.push(...resent);
        failures += 1;
        // A failed call is reported by #call, once per outage; anything else thrown here is not
        // the backend's (a throwing listener) and is reported each time.
        if (!this.#health.down) this.#reportError('exchange jobs with the backend', error);
        await this.#backoff(Math.min(2_000, 50 * 2 ** Math.min(failures, 6)));
        continue;
      }
      if (response.jobs.length > 0) {
        this.#leasedAt = sentAt;
        this.#buffer.push(...response.jobs);
      }
      this.#startBuffered();
      idle = response.jobs.length === 0;
      if (idle && want > 0 && this.#settle.length === 0 && !this.#closing) {
        const untilDue =
          response.nextDueAt === undefined
            ? Number.POSITIVE_INFINITY
            : response.nextDueAt - this.#clock.now();
        await this.#idle(Math.max(1, Math.min(this.#options.pollIntervalMs, untilDue)));
      } else if (answeredAt - lastYield > 5) {
        // Let timers (timeouts, heartbeats) run when the backend answers from memory.
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
  }

  /**
   * Waits `ms` after a failed exchange, or until `close()`. Not `#idle`: a provider may answer
   * its wait at once (RabbitMQ with deliveries buffered), which made a failing exchange retry in
   * a microtask loop that starved the whole process.
   */
  async #backoff(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        clearTimeout(timer);
        this.#stopBackoff = undefined;
        resolve();
      };
      const timer = setTimeout(stop, ms);
      // A closing worker still flushing to a dead backend must not hold the process (close() has
      // given up on it after its bound).
      if (this.#closing) timer.unref();
      this.#stopBackoff = stop;
    });
  }

  /** Waits for a backend notification, a local wake-up (a job finished, close) or `ms`. */
  async #idle(ms: number): Promise<void> {
    // A fresh signal per wait: a provider may leave its listener on it (a reused one would collect them).
    this.#idleController = new AbortController();
    this.#wakePump = this.#abortIdle;
    await this.#provider.waitForWork(this.queueName, ms, this.#idleController.signal);
    this.#wakePump = undefined;
  }

  /** Starts buffered jobs while slots are free. */
  #startBuffered(): void {
    if (this.#buffer.length === 0) return;
    // One clock read for the batch: only the queue-wait histogram uses it.
    const now = this.#metrics.enabled ? this.#clock.now() : 0;
    while (!this.#closing && this.#buffer.length > 0 && this.#running.size < this.#concurrency) {
      this.#start(this.#buffer.shift()!, now, this.#leasedAt);
    }
  }

  #start(record: JobRecord, now: number, leasedAt: number): void {
    const running = new RunningJob(record, this.#timed ? performance.now() : 0);
    running.leasedAt = leasedAt;
    this.#running.add(running);
    if (this.#metrics.enabled) {
      this.#metrics.waitSeconds.observe(this.#labels, Math.max(0, now - record.availableAt) / 1_000);
    }
    if (jobEvents.active.hasSubscribers) {
      publishJobEvent('active', { queue: this.queueName, jobId: record.id, name: record.name });
    }
    const timeoutMs = record.timeoutMs ?? this.#options.defaultTimeoutMs;
    if (timeoutMs !== undefined) this.#timeouts.add(running, timeoutMs);
    const job = new Job<Jsonified<Data>>(this.queueName, this.#provider, record, running);
    let outcome: Promise<Result> | Result;
    let thenable: boolean;
    try {
      outcome = this.#handler(job);
      // Inside the try: reading `then` can throw (a getter), which rejects like Promise.resolve would.
      thenable = isThenable(outcome);
    } catch (error) {
      this.#returnedNow(running, 'sync-error', error);
      return;
    }
    if (thenable) void this.#settleWhenDone(running, outcome as PromiseLike<unknown>);
    else this.#returnedNow(running, 'sync-result', outcome);
  }

  /**
   * A handler returned (or threw) without a promise: settle it a microtask later, like an
   * awaited value (never inside the loop of starts), together with the others of this batch
   * (one microtask instead of a promise per job).
   */
  #returnedNow(running: RunningJob, outcome: 'sync-result' | 'sync-error', value: unknown): void {
    running.outcome = outcome;
    running.value = value;
    if (this.#returned.push(running) === 1) queueMicrotask(this.#settleReturned);
  }

  /** Waits for the handler's outcome (one microtask for a synchronous handler) and settles the try. */
  async #settleWhenDone(running: RunningJob, outcome: PromiseLike<unknown>): Promise<void> {
    let result: unknown;
    try {
      result = await outcome;
    } catch (error) {
      this.#fail(running, error);
      return;
    }
    this.#complete(running, result);
  }

  #cancelRunning(id: string): void {
    const index = this.#buffer.findIndex((record) => record.id === id);
    if (index >= 0) {
      // Leased but not started: settle it as cancelled without running it (no try ran: nothing
      // to time, so neither `processing_seconds` nor the run-time average of `prefetch` sees it).
      const [record] = this.#buffer.splice(index, 1);
      this.#failTry(record!, new JobCancelledError(id));
      return;
    }
    for (const running of this.#running.byId(id)) {
      if (running.done) continue;
      const error = new JobCancelledError(id);
      running.abort(error);
      this.#fail(running, error);
    }
  }

  /** Frees the slot of a finished try; false if it was finished already (timeout, cancel, close). */
  #end(running: RunningJob): boolean {
    if (running.done) return false;
    running.done = true;
    this.#timeouts.remove(running);
    this.#running.delete(running);
    if (this.#timed) {
      const runMs = performance.now() - running.startedAt;
      this.#handlerMs = movingAverage(this.#handlerMs, runMs);
      if (this.#metrics.enabled) this.#metrics.processingSeconds.observe(this.#labels, runMs / 1_000);
    }
    return true;
  }

  #complete(running: RunningJob, result: unknown): void {
    if (running.done) return;
    // Checked here, not left to the backend: a result it cannot encode would fail the whole
    // exchange carrying it (and be retried for ever), stalling every other job of the batch.
    const unencodableBecause = unencodable(result);
    if (unencodableBecause !== undefined) {
      this.#fail(running, new ResultNotSerializableError(running.record.id, unencodableBecause));
      return;
    }
    if (!this.#end(running)) return;
    const settlement: Settlement = { kind: 'complete', record: running.record, result };
    if (this.#provider.settleNow?.(this.queueName, settlement)) this.#completed(settlement);
    else if (running.leaseLost) this.#settle.push({ settlement, leaseLost: true });
    else this.#settle.push({ settlement });
    this.#startBuffered();
    this.#wake();
  }

  #fail(running: RunningJob, cause: unknown): void {
    if (running.leaseLost) {
      this.#giveBack(running);
      return;
    }
    if (!this.#end(running)) return;
    this.#failTry(running.record, cause);
  }

  /**
   * Completions the backend did not store, their result over what it takes in one call: each
   * try fails with {@link ResultTooLargeError} (the job still leased here), its failure settled
   * by the next exchange. Returns the other settlements, which were sent.
   */
  #oversized(settle: PendingSettlement[], oversized: OversizedSettlement[]): PendingSettlement[] {
    const byId = new Map(oversized.map((item) => [item.id, item]));
    const sent: PendingSettlement[] = [];
    for (const item of settle) {
      const found = item.settlement.kind === 'complete' ? byId.get(item.settlement.record.id) : undefined;
      if (!found) {
        sent.push(item);
        continue;
      }
      this.#logger.warn('job result too large for the backend; the try failed', { ...found });
      this.#failTry(item.settlement.record, new ResultTooLargeError(found.id, found.bytes, found.maxBytes));
    }
    return sent;
  }

  /** Settles a failed try of `record` (its slot already freed): a retry or the dead-letter queue. */
  #failTry(record: JobRecord, cause: unknown): void {
    const now = this.#clock.now();
    const error = toError(cause);
    const attempt = record.attemptsMade + 1;
    // A copy with every own property of the leased record: a provider may keep there the stored
    // form it decoded the payload from, to store the retry with the payload as delivered rather
    // than as the handler left it (see providers/delivered-data.ts).
    const failed: JobRecord = {
      ...record,
      attemptsMade: attempt,
      errors: [...record.errors, errorEntry(error, attempt, now)].slice(-maxErrorHistory),
    };
    const terminal = error instanceof JobCancelledError || attempt >= record.attempts;
    if (!terminal) this.#checkStrategy(record.backoff);
    const retryAt = terminal ? null : now + this.#retryDelay(record.backoff, attempt, error);
    // The stored record says when the job runs again (getJob, and the queue-wait histogram of the
    // next try, which would otherwise count the backoff and earlier tries as waiting).
    if (retryAt !== null) failed.availableAt = retryAt;
    this.#settle.push({ settlement: { kind: 'fail', record: failed, retryAt }, error, attempt, terminal });
    this.#startBuffered();
    this.#wake();
  }

  /**
   * A try that lost its lease failed (most likely because its signal aborted): not a failed
   * attempt of the job. It is given back (released) in case this worker still holds it (a false
   * alarm of the local expiry, or RabbitMQ redelivered it here); else the backend leaves it to
   * the run that holds it, or to lease recovery. A try whose lease expired ran past it: given
   * back as a stall, counted against `maxStalls` as lease recovery would count it (a job that
   * stalls its worker on every run was given back for ever, never dead-lettered).
   */
  #giveBack(running: RunningJob): void {
    if (!this.#end(running)) return;
    const stalled = running.leaseExpired ? { maxStalls: this.#options.maxStalls } : undefined;
    this.#provider
      .release(this.queueName, [running.record], this.#clock.now(), stalled)
      .then((counted) => {
        this.#countReleased(counted);
        if (!counted || counted.stalled === 0) return;
        this.#countStalls(counted.stalled, counted.deadLettered);
        // As a maintenance pass reports its recoveries (the same event, the same fields).
        const result = {
          recovered: counted.stalled - counted.deadLettered,
          deadLettered: counted.deadLettered,
          removed: 0,
          ...(counted.parentsDeadLettered ? { parentsDeadLettered: counted.parentsDeadLettered } : {}),
        };
        publishJobEvent('stalled', { queue: this.queueName, ...result });
        this.#logger.info('gave back a job that stalled past its lease', {
          jobId: running.record.id,
          ...result,
        });
      })
      .catch((error: unknown) => this.#reportError('give back a job whose lease was lost', error));
    this.#startBuffered();
    this.#wake();
  }

  /**
   * Counts in `jobs_dead_lettered_total` what a `release` dead-lettered besides stalls: jobs
   * cancelled while active (the cancel unheard) and flow parents that went with a child.
   */
  // `unknown`: a provider of your own written before `stalled` resolves `release` to nothing.
  #countReleased(counted: unknown): void {
    const result = counted as StalledReleaseResult | undefined;
    const dead = (result?.cancelled ?? 0) + (result?.parentsDeadLettered ?? 0);
    if (dead > 0) this.#metrics.deadLettered.inc(this.#labels, dead);
  }

  /**
   * Counts stalls the backend recorded (a maintenance pass's recoveries, or tries given back past
   * their leases): `jobs_stalled_total`, and `jobs_dead_lettered_total` for those past `maxStalls`.
   */
  #countStalls(stalled: number, deadLettered: number): void {
    if (stalled > 0) this.#metrics.stalled.inc(this.#labels, stalled);
    if (deadLettered > 0) this.#metrics.deadLettered.inc(this.#labels, deadLettered);
  }

  /**
   * The delay before retry `attempt`. A custom strategy that throws is the worker's bug, not the
   * job's: the retry runs without delay, as for a missing strategy, and a warning names it once.
   * Before, the throw escaped the settling of the try (an unhandled rejection, fatal to a Node
   * process by default) and left the job to lease recovery, its failure unrecorded.
   */
  #retryDelay(backoff: JobRecord['backoff'], attempt: number, error: Error): number {
    try {
      return backoffDelay(backoff, attempt, this.#options.random, this.#options.backoffStrategies, error);
    } catch (thrown) {
      const strategy = backoff.type === 'custom' ? backoff.strategy : backoff.type;
      if (!this.#throwingStrategies.has(strategy)) {
        this.#throwingStrategies.add(strategy);
        this.#logger.warn('custom backoff strategy threw; retrying without delay', {
          strategy,
          error: thrown instanceof Error ? thrown.message : String(thrown),
        });
      }
      return 0;
    }
  }

  /** Warns once per name about a custom backoff this worker lacks (its retries run at once). */
  #checkStrategy(backoff: JobRecord['backoff']): void {
    if (backoff.type !== 'custom' || Object.hasOwn(this.#options.backoffStrategies, backoff.strategy)) return;
    if (this.#missingStrategies.has(backoff.strategy)) return;
    this.#missingStrategies.add(backoff.strategy);
    this.#logger.warn('job names a backoff strategy this worker does not have; retrying without delay', {
      strategy: backoff.strategy,
      known: Object.keys(this.#options.backoffStrategies),
    });
  }

  /**
   * The kept settlements to send again with an exchange carrying `settle` (taken out of
   * `#awaiting`): not one whose job has a new settlement in it, so that the provider's answers,
   * which name jobs by id, name one settlement each.
   */
  #resendable(settle: PendingSettlement[]): PendingSettlement[] {
    if (this.#awaiting.length === 0) return [];
    const fresh = new Set(settle.map((item) => item.settlement.record.id));
    const resend: PendingSettlement[] = [];
    const later: PendingSettlement[] = [];
    for (const item of this.#awaiting) (fresh.has(item.settlement.record.id) ? later : resend).push(item);
    this.#awaiting = later;
    return resend;
  }

  /**
   * Keeps the settlements the provider holds for their job's redelivery (unreported: neither
   * stored nor refused yet) and returns the others of the exchange.
   */
  #awaitRedelivery(sent: PendingSettlement[], ids: readonly string[]): PendingSettlement[] {
    const awaiting = new Set(ids);
    const answered: PendingSettlement[] = [];
    for (const item of sent) {
      if (!awaiting.has(item.settlement.record.id)) {
        answered.push(item);
        continue;
      }
      if (!item.awaitedRedelivery) {
        item.awaitedRedelivery = true;
        this.#logger.debug(
          "a finished try's channel had closed; its outcome waits for the job's redelivery",
          {
            jobId: item.settlement.record.id,
          },
        );
      }
      this.#awaiting.push(item);
    }
    return answered;
  }

  /**
   * The worker closed with settlements still waiting for their job's redelivery: reported
   * refused (the lease ended with the channel), as if the redelivery had gone elsewhere. The
   * provider still settles a redelivery that comes back to it with the kept outcome.
   */
  #stopAwaiting(): void {
    if (this.#awaiting.length === 0) return;
    const items = this.#awaiting;
    this.#awaiting = [];
    this.#refused(
      items,
      items.map((item) => item.settlement.record.id),
      'worker closed before the redelivery of jobs whose channel closed came back; their outcomes are not reported',
    );
  }

  /**
   * Reports the settlements of an exchange that refused some (`stale`: their lease had ended, so
   * another worker holds the job or finished it): those are counted and logged, not reported as
   * completed or failed, since nothing of them was stored.
   */
  #refused(
    settle: PendingSettlement[],
    stale: string[],
    message = 'late outcomes refused: their leases had ended (lease expired, or the broker channel closed)',
  ): void {
    const refused = new Set(stale);
    let lost = 0;
    for (const item of settle) {
      if (!refused.has(item.settlement.record.id)) this.#persisted(item);
      else if (!item.leaseLost) lost += 1;
    }
    if (lost > 0) this.#metrics.leasesLost.inc(this.#labels, lost);
    this.#logger.warn(message, { jobIds: stale });
  }

  /** Reports a settlement once the backend has stored it. */
  #persisted(item: PendingSettlement): void {
    const { settlement } = item;
    if (item.awaitedRedelivery) this.#metrics.redeliveriesSettled.inc(this.#labels);
    if (settlement.kind === 'complete') {
      this.#completed(settlement);
      return;
    }
    const { record } = settlement;
    const error = item.error!;
    const labels = this.#labels;
    this.#metrics.failed.inc(labels);
    if (item.terminal) this.#metrics.deadLettered.inc(labels);
    else this.#metrics.retried.inc(labels);
    const event = {
      queue: this.queueName,
      jobId: record.id,
      name: record.name,
      error: error.message,
      attempt: item.attempt!,
    };
    publishJobEvent('failed', event);
    publishJobEvent(item.terminal ? 'deadLettered' : 'retried', event);
    this.emit('failed', record.id, error, !item.terminal);
  }

  /**
   * Flow parents the backend dead-lettered because a child this worker dead-lettered failed
   * (policy `fail`): counted and published as dead-lettered, as the child is (no try of theirs
   * ran, so no `failed` event; `attempt` is the tries the parent made, 0).
   */
  #parentsDeadLettered(parents: readonly DeadLetteredParent[]): void {
    this.#metrics.deadLettered.inc(this.#labels, parents.length);
    if (!jobEvents.deadLettered.hasSubscribers) return;
    for (const parent of parents) {
      publishJobEvent('deadLettered', {
        queue: this.queueName,
        jobId: parent.id,
        name: parent.name,
        error: parent.message,
        attempt: 0,
      });
    }
  }

  #completed(settlement: Settlement & { kind: 'complete' }): void {
    const { record } = settlement;
    this.#metrics.completed.inc(this.#labels);
    if (jobEvents.completed.hasSubscribers) {
      publishJobEvent('completed', { queue: this.queueName, jobId: record.id, name: record.name });
    }
    this.emit('completed', record.id, settlement.result as Result);
  }

  /**
   * Renews the leases of running and leased-ahead jobs, aborts those cancelled meanwhile, and
   * gives up those the backend refused to renew. Runs every `leaseMs / 3`; while a renewal is
   * unanswered it only checks which leases have expired meanwhile (`#checkLeases`).
   */
  async #heartbeat(): Promise<void> {
    this.#checkLeases();
    if (this.#renewing || (this.#running.size === 0 && this.#buffer.length === 0)) return;
    this.#renewing = true;
    try {
      const sentAt = performance.now();
      const now = this.#clock.now();
      const held: JobRecord[] = [];
      for (const running of this.#running.values()) if (!running.leaseLost) held.push(running.record);
      held.push(...this.#buffer);
      // A renewal answered without the backend (a RabbitMQ state store while the broker is away)
      // keeps the leases but says nothing of the backend: counted as its answer, each heartbeat
      // ended the outage (one error per heartbeat) or, heart-beating faster than
      // backendTimeoutMs, hid it.
      const { cancelled, lost } = await this.#call(
        'renew leases',
        () => this.#provider.extendLeases(this.queueName, held, now + this.#options.leaseMs, now),
        (renewal) => renewal.backendDown !== true,
      );
      this.#renewedAt = sentAt;
      if (lost.length > 0) this.#loseLeases(new Set(held), new Set(lost), 'revoked');
      // Cancels recorded by the backend: the `onCancel` message may never have reached this
      // worker (subscriber connection down). Aborted exactly as on the message (a no-op if it did).
      for (const id of cancelled) this.#cancelRunning(id);
    } catch {
      // Reported by #call, once per outage; the leases' own expiry check goes on.
    } finally {
      this.#renewing = false;
    }
  }

  /**
   * Gives up the leases that may have ended: `leaseMs` has passed since the fetch that leased the
   * job and since the last answered renewal were sent. The backend starts a lease when it runs
   * the request, so this errs early by up to a round trip (never a lease the backend still
   * counts on past its end), and late by up to a heartbeat (the check's period). A job leased
   * ahead by an earlier fetch was renewed with the others since.
   */
  #checkLeases(): void {
    const expiredBefore = performance.now() - this.#options.leaseMs;
    if (this.#renewedAt > expiredBefore) return;
    const expired = new Set<JobRecord>();
    for (const running of this.#running.values()) {
      if (!running.leaseLost && running.leasedAt < expiredBefore) expired.add(running.record);
    }
    if (this.#leasedAt < expiredBefore) for (const record of this.#buffer) expired.add(record);
    if (expired.size > 0) this.#loseLeases(expired, undefined, 'expired');
  }

  /**
   * Gives up leases (of `records`, those with an id in `ids` when given): each running try's
   * signal aborts with {@link LeaseLostError} (its outcome is still offered to the backend, which
   * refuses it if another run holds the job; see `#fail`), and leased-ahead jobs are dropped
   * unrun. Each is counted once in `leases_lost_total`.
   */
  #loseLeases(records: Set<JobRecord>, ids: Set<string> | undefined, reason: LeaseLossReason): void {
    const lost: string[] = [];
    const isLost = (record: JobRecord) => records.has(record) && (!ids || ids.has(record.id));
    for (const running of this.#running.values()) {
      if (running.leaseLost || !isLost(running.record)) continue;
      running.leaseLost = true;
      running.leaseExpired = reason === 'expired';
      running.abort(new LeaseLostError(running.record.id, reason));
      lost.push(running.record.id);
    }
    const dropped = this.#buffer.filter(isLost);
    if (dropped.length > 0) {
      this.#buffer = this.#buffer.filter((record) => !isLost(record));
      for (const record of dropped) lost.push(record.id);
      // As at close(): a job still ours goes back to waiting; one another run holds is left to it.
      this.#provider
        .release(this.queueName, dropped, this.#clock.now())
        .then((counted) => this.#countReleased(counted))
        .catch((error: unknown) =>
          this.#reportError('give back leased-ahead jobs whose leases were lost', error),
        );
    }
    if (lost.length === 0) return;
    this.#metrics.leasesLost.inc(this.#labels, lost.length);
    this.#logger.warn(
      reason === 'revoked'
        ? 'lease renewals refused: the leases had ended (lease expired, or the broker channel closed); handlers aborted'
        : 'leases expired: no renewal was answered within leaseMs; handlers aborted',
      { jobIds: lost },
    );
    this.#wake();
  }

  /** Recovers stalled jobs (leases expired) and applies retention; runs every `maintenanceIntervalMs`. */
  async maintain(): Promise<void> {
    if (this.#maintaining || this.#closing) return;
    this.#maintaining = true;
    this.#settledSinceMaintenance = 0;
    try {
      const result = await this.#call('run maintenance', () =>
        this.#provider.maintain(this.queueName, this.#clock.now(), this.#options.maxStalls, this.#retention),
      );
      if (result.recovered + result.deadLettered > 0) {
        // Poison jobs (past maxStalls) and cancelled jobs of dead workers land in the DLQ too.
        this.#countStalls(
          result.recovered + result.deadLettered,
          result.deadLettered + (result.parentsDeadLettered ?? 0),
        );
        publishJobEvent('stalled', { queue: this.queueName, ...result });
        this.#logger.info('recovered stalled jobs', { ...result });
        this.#wake();
      }
    } catch {
      // Reported by #call, once per outage.
    } finally {
      this.#maintaining = false;
    }
  }

  async #autoscale(): Promise<void> {
    const autoscale = this.#options.autoscale;
    // One count at a time: with the backend down, ioredis holds each one until it is back, and
    // one per interval would pile up (3,600 an hour) and all land at once.
    if (!autoscale || this.#closing || this.#autoscaling) return;
    this.#autoscaling = true;
    try {
      const counts = await this.#provider.counts(this.queueName);
      const wanted = Math.ceil(counts.waiting / autoscale.jobsPerSlot);
      const next = Math.min(autoscale.max, Math.max(autoscale.min, wanted));
      if (next !== this.#concurrency) {
        this.#logger.debug('autoscale', { from: this.#concurrency, to: next, waiting: counts.waiting });
        this.#concurrency = next;
        this.#wake();
      }
    } catch (error) {
      // An outage the worker already reported (once): a count failing each interval is not news
      // (on RabbitMQ one rejects every `readyTimeoutMs` while the broker is down or frozen).
      if (this.#health.down) this.#logger.debug('worker could not autoscale', { error: String(error) });
      else this.#reportError('autoscale', error);
    } finally {
      this.#autoscaling = false;
    }
  }

  /**
   * Stops fetching, waits up to `timeoutMs` (default `closeTimeoutMs`) for in-flight jobs, then
   * aborts the rest with {@link WorkerClosingError} and releases them for immediate redelivery.
   * The backend then gets up to `backendCloseTimeoutMs` (5 s) for the last exchange and the
   * release; one that does not answer is given up on with an `error` event, so close() is bounded.
   */
  close(timeoutMs = this.#options.closeTimeoutMs): Promise<void> {
    this.#closed ??= this.#close(timeoutMs);
    return this.#closed;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#closing = true;
    // A closed worker's view of the backend is no one's: out of `backend_up` from now on.
    this.#upVote.release();
    for (const timer of this.#timers) clearInterval(timer);
    this.#unsubscribeCancel?.();
    this.#stopBackoff?.();
    this.#wake();
    if (this.#running.size > 0) {
      await new Promise<void>((resolve) => {
        const deadline = setTimeout(finish, timeoutMs);
        const check = () => {
          if (this.#running.size === 0) finish();
        };
        function finish(): void {
          clearTimeout(deadline);
          clearInterval(poll);
          resolve();
        }
        const poll = setInterval(check, 10);
        check();
      });
    }
    const released: JobRecord[] = [];
    for (const running of [...this.#running.values()]) {
      running.done = true;
      this.#timeouts.remove(running);
      running.abort(new WorkerClosingError(running.record.id));
      this.#running.delete(running);
      released.push(running.record);
    }
    this.#timeouts.clear();
    this.#wake();
    const backendDone = (async () => {
      await this.#pumpDone;
      try {
        await this.#provider.stopFetching?.(this.queueName);
      } catch (error) {
        this.#reportError('stop fetching', error);
      }
      // Taken after the pump stopped: an exchange in flight at close() may have leased more.
      released.unshift(...this.#buffer.splice(0));
      if (released.length === 0) return;
      try {
        this.#countReleased(await this.#provider.release(this.queueName, released, this.#clock.now()));
      } catch (error) {
        // Not fatal: their leases expire and another worker recovers them.
        this.#reportError('release in-flight jobs', error);
      }
    })();
    try {
      // A backend that does not answer (Redis down under `maxRetriesPerRequest: null`) would hold
      // the last exchange or the release for ever; past the bound the jobs are left to their
      // leases, which expire so that another worker recovers them.
      await withDeadline(
        backendDone,
        this.#options.backendCloseTimeoutMs,
        'worker close: last exchange and release',
      );
    } catch (error) {
      this.#reportError(
        'close (the backend did not answer; unreleased jobs return when their leases expire)',
        error,
      );
    }
    this.#logger.debug('worker closed', { released: released.length });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
