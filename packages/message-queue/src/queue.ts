import {
  type Clock,
  ClosedError,
  ConfigError,
  type ConfigIssue,
  childLogger,
  type GaugeVote,
  type HealthReport,
  type Logger,
  maxTimerMs,
  parseOptions,
  silentLogger,
  startDeadline,
  systemClock,
  withDeadline,
} from '@noa/core';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { AddNotConfirmedError, InvalidPayloadError, UnsupportedOperationError } from './errors.js';
import { publishJobEvent } from './events.js';
import { probeQueue } from './health.js';
import { newJobId } from './ids.js';
import {
  type ChildFailurePolicy,
  childFailurePolicySchema,
  type JobOptions,
  jobOptionsSchema,
  type ParsedJobOptions,
} from './job-options.js';
import type { JobCounts, JobInfo, JobRecord } from './job-record.js';
import type { Jsonified } from './jsonified.js';
import { createQueueMetrics, type QueueMetrics } from './metrics.js';
import type {
  CancelOutcome,
  DeadLetteredParent,
  MaintenanceResult,
  QueueProvider,
  RetentionPolicy,
} from './provider.js';
import { isStandardSchema, issuePath, type StandardSchemaV1 } from './standard-schema.js';

/** Retention of finished jobs, so backend memory stays bounded. */
export const retentionSchema = z
  .object({
    /** Completed jobs kept at most (newest first). */
    completedCount: z.number().int().nonnegative().default(1_000),
    /** Completed jobs older than this are removed. */
    completedAgeMs: z
      .number()
      .int()
      .nonnegative()
      .default(24 * 3_600_000),
    /** Dead-lettered jobs kept at most. */
    deadCount: z.number().int().nonnegative().default(10_000),
    /** Dead-lettered jobs older than this are removed (default 7 days). */
    deadAgeMs: z
      .number()
      .int()
      .nonnegative()
      .default(7 * 24 * 3_600_000),
  })
  .strict();

/** Retention as users write it. */
export type RetentionOptions = z.input<typeof retentionSchema>;

const providerSchema = z.custom<QueueProvider>(
  (value) => typeof value === 'object' && value !== null && 'exchange' in value && 'add' in value,
  { message: 'expected a QueueProvider (MemoryProvider, RedisProvider, RabbitMqProvider)' },
);

/**
 * How long a scrape waits for a count while the depth is stale (the last count failed or was
 * late): long enough for a backend that is back to answer, short enough that a scrape during an
 * outage never takes seconds.
 */
const staleWaitMs = 250;

/**
 * Options of `Queue.checkHealth`. The default deadline (500 ms) is shorter than @noa/core's
 * `runHealthChecks` default (800 ms), so under a readiness handler's defaults the queue's own
 * report (`queue:<name>`, its counts' `TimeoutError`) answers before the outer deadline fires.
 */
const checkHealthOptionsSchema = z
  .object({ timeoutMs: z.number().int().positive().max(maxTimerMs).default(500) })
  .strict();

/** Options of {@link Queue}. */
export const queueOptionsSchema = z
  .object({
    /** Queue name: letters, digits, `_ - . :`. */
    name: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[\w.:-]+$/),
    /** The backend. One provider may serve many queues. */
    provider: providerSchema,
    /**
     * Schema of the payload, any Standard Schema (zod 3.24+ or 4, `zod/mini`, valibot, arktype):
     * `add` rejects a bad payload before anything is enqueued and stores the schema's output.
     */
    schema: z
      .custom<StandardSchemaV1>(isStandardSchema, {
        message:
          'expected a Standard Schema (zod 3.24+ or 4, valibot, arktype: an object with ~standard.validate)',
      })
      .optional(),
    /** Defaults merged under every job's options. */
    defaultJobOptions: z.record(z.string(), z.unknown()).default({}),
    clock: z
      .custom<Clock>((value) => typeof (value as Clock | undefined)?.now === 'function')
      .default(systemClock),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).default(silentLogger),
    /** prom-client registry for `noa_message_queue_*` metrics. */
    registry: z.custom<Registry>((value) => typeof value === 'object' && value !== null).optional(),
    /**
     * With a registry, `queue_depth_jobs` is counted at scrape time; a count younger than this
     * (a scrape's or `counts()`'s) is reused, so a scrape storm does not hammer the backend.
     */
    depthCacheMs: z.number().int().nonnegative().max(maxTimerMs).default(1_000),
    /** How long a scrape waits for the count; past it the last values are reported. */
    depthTimeoutMs: z.number().int().positive().max(maxTimerMs).default(2_000),
    /**
     * The `timeoutMs` of every `add`/`addBulk`/`addFlow` that gives none (default: none, the add
     * waits for the backend, for ever while Redis is down). Past it the add rejects with
     * `AddNotConfirmedError`: the jobs may still be enqueued (retry with the same `jobId`).
     */
    addTimeoutMs: z.number().int().positive().max(maxTimerMs).optional(),
  })
  .strict();

/**
 * A queue's `defaultJobOptions`: any job option but `jobId` (as BullMQ's `DefaultJobOptions`): a
 * default id would make every add after the first a no-op (`added: false`, nothing enqueued).
 */
const defaultJobOptionsSchema = jobOptionsSchema.partial().refine((options) => options.jobId === undefined, {
  message: 'a default jobId would make every add after the first a no-op; give jobId per add',
  path: ['jobId'],
});

/** `defaultJobOptions` parsed, a bad field named under `defaultJobOptions.` (as a bulk item's are). */
function parseDefaultJobOptions(input: unknown): JobOptions {
  try {
    return parseOptions('Queue', defaultJobOptionsSchema, input);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(
      'Queue',
      error.issues.map((issue) => ({
        ...issue,
        path: `defaultJobOptions${issue.path ? `.${issue.path}` : ''}`,
      })),
    );
  }
}

/** Per-call options of `add`, `addBulk` and `addFlow`. */
const addCallSchema = z
  .object({
    /** Give up waiting for the backend after this long (overrides the queue's `addTimeoutMs`). */
    timeoutMs: z.number().int().positive().max(maxTimerMs).optional(),
    /** Give up waiting when this signal aborts (an HTTP request's, say). */
    signal: z
      .custom<AbortSignal>((value) => value instanceof AbortSignal, { message: 'expected an AbortSignal' })
      .optional(),
  })
  .strict();

/**
 * How long an add waits for the backend. On `timeoutMs` or `signal`, the add rejects with
 * `AddNotConfirmedError`: the jobs may still be enqueued, and nothing is retried by the queue.
 */
export type AddCallOptions = z.input<typeof addCallSchema>;

/** Options of {@link Queue}; `Data` is inferred from `schema` when given. */
export type QueueOptions<Data = unknown> = Omit<
  z.input<typeof queueOptionsSchema>,
  'schema' | 'defaultJobOptions'
> & {
  schema?: StandardSchemaV1<unknown, Data>;
  /** Options merged under every job's own: any job option but `jobId` (refused: see above). */
  defaultJobOptions?: Omit<JobOptions, 'jobId'>;
};

/**
 * The keys of a job to add, checked strictly: an unknown key (BullMQ's `opts`) would otherwise
 * be ignored with the options it carries (a `delay` lost, the job run at once).
 */
const newJobSchema = z
  .object({ name: z.string(), data: z.unknown().optional(), options: z.unknown().optional() })
  .strict();
const bulkSchema = z.object({ jobs: z.array(newJobSchema) });
const flowSchema = newJobSchema
  .extend({ children: z.array(newJobSchema), onChildFailure: z.unknown().optional() })
  .strict();

/** A job to add: its name (for routing in the handler), payload and options. */
export interface NewJob<Data> {
  name: string;
  data: Data;
  options?: JobOptions;
}

/** A flow: the parent runs after all its children settle, and can read their results. */
export interface NewFlow<Data> extends NewJob<Data> {
  children: NewJob<Data>[];
  /** What a child's final failure does to the parent (default `fail`). */
  onChildFailure?: ChildFailurePolicy;
}

/** The outcome of an add: the job id and whether it was new (false: deduplicated by `jobId`). */
export interface AddResult {
  id: string;
  added: boolean;
}

/** A job as read back, with its payload typed. */
export type JobView<Data> = Omit<JobInfo, 'data'> & { data: Jsonified<Data> };

/**
 * The producer and admin side of one queue: add jobs (single, bulk, flows), read them back,
 * pause, drain, cancel and manage the dead-letter queue.
 */
export class Queue<Data = unknown> {
  readonly name: string;
  readonly provider: QueueProvider;
  readonly #schema: StandardSchemaV1<unknown, Data> | undefined;
  readonly #defaults: JobOptions;
  /** The defaults parsed once: the common `add` without options skips option parsing. */
  readonly #parsedDefaults: ParsedJobOptions;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #metrics: QueueMetrics;
  readonly #depthCacheMs: number;
  readonly #depthTimeoutMs: number;
  readonly #addTimeoutMs: number | undefined;
  /** The bound of an add given no call options (one object, not one per add). */
  readonly #defaultBound: AddCallOptions;
  /** When `queue_depth_jobs` was last counted (this clock), and the scrape's count under way. */
  #depthAt = Number.NEGATIVE_INFINITY;
  #depthCount: Promise<void> | undefined;
  /** The backend's count started by a scrape, until it answers (it may outlive its scrape). */
  #backendCount: Promise<void> | undefined;
  /** The count `checkHealth()` sent and is still waiting for: later probes join it. */
  #healthCount: { count: Promise<JobCounts>; startedAt: number } | undefined;
  /** The depth values are from an earlier count: the last failed or has not answered. */
  #depthStale = false;
  readonly #unwatchDepth: () => void;
  /** This queue object's part of `queue_depth_stale` (the minimum over those of its name). */
  readonly #staleVote: GaugeVote;
  #closed = false;

  constructor(options: QueueOptions<Data>) {
    const parsed = parseOptions('Queue', queueOptionsSchema, options);
    this.name = parsed.name;
    this.provider = parsed.provider;
    this.#schema = parsed.schema as StandardSchemaV1<unknown, Data> | undefined;
    this.#defaults = parseDefaultJobOptions(parsed.defaultJobOptions);
    this.#parsedDefaults = parseOptions('Queue.defaultJobOptions', jobOptionsSchema, this.#defaults);
    this.#clock = parsed.clock;
    // Wrapped like the worker's: a logger that throws loses its lines, never the queue's call.
    this.#logger = childLogger(parsed.logger, { component: 'message-queue', queue: parsed.name });
    this.#metrics = createQueueMetrics(parsed.registry);
    this.#depthCacheMs = parsed.depthCacheMs;
    this.#depthTimeoutMs = parsed.depthTimeoutMs;
    this.#addTimeoutMs = parsed.addTimeoutMs;
    this.#defaultBound = { timeoutMs: parsed.addTimeoutMs };
    this.#staleVote = this.#metrics.depthStale(this.name);
    this.#unwatchDepth = this.#metrics.watchDepth(() => this.#scrapeDepth());
  }

  /**
   * `queue_depth_jobs` at a scrape: counted unless a count is younger than `depthCacheMs` (one
   * count at a time, shared by concurrent scrapes), waited for at most `depthTimeoutMs`. A failed
   * or late count leaves the last values, marked stale (`queue_depth_stale`), and is logged once
   * until a count succeeds; it never fails the scrape. While the depth is stale a scrape does not
   * wait it out again: it answers at once if the earlier count is still unanswered (nothing piles
   * up on a backend that is down), else starts a count and waits for it at most `staleWaitMs`.
   */
  #scrapeDepth(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#depthCount) return this.#depthCount;
    const now = this.#clock.now();
    if (now - this.#depthAt < this.#depthCacheMs) return Promise.resolve();
    if (this.#backendCount) {
      this.#markDepthStale(undefined);
      return Promise.resolve();
    }
    this.#depthAt = now;
    const backendCount = this.provider.counts(this.name).then(
      (counts) => this.#setDepth(counts),
      (error: unknown) => this.#markDepthStale(error),
    );
    this.#backendCount = backendCount.finally(() => {
      this.#backendCount = undefined;
    });
    const waitMs = this.#depthStale ? Math.min(staleWaitMs, this.#depthTimeoutMs) : this.#depthTimeoutMs;
    const count = withDeadline(backendCount, waitMs, `count queue ${this.name} for a scrape`).catch(
      (error: unknown) => this.#markDepthStale(error),
    );
    this.#depthCount = count.finally(() => {
      this.#depthCount = undefined;
    });
    return this.#depthCount;
  }

  #setDepth(counts: JobCounts): void {
    // A count that lands after close() would bring back the series close() removed.
    if (this.#closed) return;
    this.#depthAt = this.#clock.now();
    for (const state of ['waiting', 'delayed', 'active', 'completed', 'failed'] as const) {
      this.#metrics.depth.set({ queue: this.name, state }, counts[state]);
    }
    // Flow parents waiting for their children (a parent stuck there was invisible).
    this.#metrics.depth.set({ queue: this.name, state: 'waiting-children' }, counts.waitingChildren);
    if (this.#depthStale) {
      this.#depthStale = false;
      this.#logger.info('queue_depth_jobs counted again');
    }
    this.#staleVote.set(0);
  }

  /** The depth keeps its last values, marked stale; a streak of failed counts is logged once. */
  #markDepthStale(error: unknown): void {
    if (this.#closed) return;
    this.#staleVote.set(1);
    if (this.#depthStale) return;
    this.#depthStale = true;
    this.#logger.warn(
      'queue_depth_jobs not counted: reporting the last values, marked stale (queue_depth_stale)',
      {
        error: error instanceof Error ? error.message : String(error),
      },
    );
  }

  /** The queue's clock (shared with workers and schedulers built from it). */
  get clock(): Clock {
    return this.#clock;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError(`Queue ${this.name}`);
  }

  /** The payload as the schema outputs it, or `InvalidPayloadError` naming the bad fields. */
  #payload(data: unknown): Data | Promise<Data> {
    const result = this.#schema!['~standard'].validate(data);
    return result instanceof Promise
      ? result.then((settled) => this.#checked(settled))
      : this.#checked(result);
  }

  #checked(result: StandardSchemaV1.Result<Data>): Data {
    if (result.issues === undefined) return result.value;
    throw new InvalidPayloadError(
      this.name,
      result.issues.map((issue) => ({ path: issuePath(issue), message: issue.message })),
    );
  }

  /**
   * Validates the payloads of `jobs` (all, before any is enqueued) and gives them the schema's
   * output. One `InvalidPayloadError` names every bad field of every job, each under the job's
   * path (`pathOf(index)`: `jobs.3.data`, `children.0.data`), as bad options are named.
   */
  async #validated<Job extends NewJob<Data>>(jobs: Job[], pathOf: (index: number) => string): Promise<Job[]> {
    if (!this.#schema) return jobs;
    const settled = await Promise.allSettled(jobs.map(async (job) => this.#payload(job.data)));
    const issues: { path: string; message: string }[] = [];
    for (const [index, outcome] of settled.entries()) {
      if (outcome.status === 'fulfilled') continue;
      if (!(outcome.reason instanceof InvalidPayloadError)) throw outcome.reason;
      const prefix = pathOf(index);
      for (const issue of outcome.reason.details.issues as { path: string; message: string }[])
        issues.push({ ...issue, path: issue.path ? `${prefix}.${issue.path}` : prefix });
    }
    if (issues.length > 0) throw new InvalidPayloadError(this.name, issues);
    return jobs.map((job, index) => ({
      ...job,
      data: (settled[index] as PromiseFulfilledResult<Data>).value,
    }));
  }

  /** Builds the stored record of a new job (validates its options; its payload is validated). */
  #record(job: NewJob<Data>, now: number, path?: string): JobRecord {
    const options: ParsedJobOptions = job.options ? this.#options(job.options, path) : this.#parsedDefaults;
    const record: JobRecord = {
      id: options.jobId ?? newJobId(),
      name: job.name,
      data: job.data,
      priority: options.priority,
      attempts: options.attempts,
      backoff: options.backoff,
      removeOnComplete: options.removeOnComplete,
      attemptsMade: 0,
      errors: [],
      createdAt: now,
      availableAt: now + options.delay,
    };
    if (options.timeout !== undefined) record.timeoutMs = options.timeout;
    if (options.group !== undefined) record.group = options.group;
    return record;
  }

  /** A job's options over the queue's defaults; `path` (`jobs.3.`) prefixes the bad fields' paths. */
  #options(options: JobOptions, path: string | undefined): ParsedJobOptions {
    try {
      return parseOptions('job options', jobOptionsSchema, { ...this.#defaults, ...options });
    } catch (error) {
      if (path === undefined || !(error instanceof ConfigError)) throw error;
      throw new ConfigError(
        'job options',
        error.issues.map((issue) => ({
          ...issue,
          path: `${path}options${issue.path ? `.${issue.path}` : ''}`,
        })),
      );
    }
  }

  /**
   * Payloads are stored as JSON; a value JSON cannot carry (a BigInt, a cycle) makes providers'
   * encoding throw a TypeError before anything is stored. Found here only after a failed add, so
   * the common add does not encode twice.
   */
  #unencodable(records: JobRecord[], cause: unknown): InvalidPayloadError | undefined {
    if (!(cause instanceof TypeError)) return undefined;
    for (const [index, record] of records.entries()) {
      try {
        JSON.stringify(record.data);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        const which = records.length > 1 ? `job ${index} of the batch: ` : '';
        return new InvalidPayloadError(this.name, [
          { path: '', message: `${which}not JSON-encodable (${message})` },
        ]);
      }
    }
    return undefined;
  }

  /**
   * Checks a job as `add` would, without enqueuing it: its keys (a `ConfigError` names an
   * unknown one, e.g. BullMQ's `opts`), its options (a `ConfigError` naming the field) and its
   * payload (`InvalidPayloadError`: the queue's schema, or a value JSON cannot carry). The
   * `Scheduler` checks its jobs with it when a schedule is defined. Synchronous: a schema that
   * validates asynchronously is left to `add`.
   */
  validate(job: NewJob<Data>): void {
    parseOptions('job', newJobSchema, job);
    if (job.options) this.#options(job.options, undefined);
    let data: unknown = job.data;
    if (this.#schema) {
      const result = this.#schema['~standard'].validate(job.data);
      if (result instanceof Promise) return;
      data = this.#checked(result);
    }
    try {
      JSON.stringify(data);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new InvalidPayloadError(this.name, [{ path: '', message: `not JSON-encodable (${message})` }]);
    }
  }

  /**
   * Adds one job. With `options.jobId`, adding an id that exists is a no-op (`added: false`).
   * `call.timeoutMs` / `call.signal` bound the wait for the backend (see {@link AddCallOptions}).
   */
  async add(name: string, data: Data, options?: JobOptions, call?: AddCallOptions): Promise<AddResult> {
    this.#check();
    const bound = this.#bound(call);
    const payload = this.#schema ? await this.#payload(data) : data;
    const now = this.#clock.now();
    const [result] = await this.#add([this.#record({ name, data: payload, options }, now)], now, bound);
    return result!;
  }

  /**
   * Adds many jobs in one backend round trip. Every item (its keys: `name`, `data`, `options`),
   * payload and options is validated before any is enqueued; a bad one throws `ConfigError`
   * naming it (`jobs.<index>.<field>`) or `InvalidPayloadError`. `call` bounds the wait for the
   * backend, for the whole batch (see {@link AddCallOptions}).
   */
  async addBulk(jobs: NewJob<Data>[], call?: AddCallOptions): Promise<AddResult[]> {
    this.#check();
    parseOptions('addBulk', bulkSchema, { jobs });
    const bound = this.#bound(call);
    const valid = await this.#validated(jobs, (index) => `jobs.${index}.data`);
    const now = this.#clock.now();
    return this.#add(
      valid.map((job, index) => this.#record(job, now, `jobs.${index}.`)),
      now,
      bound,
    );
  }

  /** The wait bound of an add: its own options over the queue's `addTimeoutMs`. */
  #bound(call: AddCallOptions | undefined): AddCallOptions {
    if (call === undefined) return this.#defaultBound;
    const parsed = parseOptions('add call options', addCallSchema, call);
    return { timeoutMs: parsed.timeoutMs ?? this.#addTimeoutMs, signal: parsed.signal };
  }

  /**
   * The backend's answer to an add, or `AddNotConfirmedError` once `timeoutMs` passes or `signal`
   * aborts. The call itself is not cancelled (it cannot be taken back from the backend's queue)
   * nor retried: the jobs may still be enqueued, which the error says.
   */
  #confirmed<T>(jobIds: () => string[], bound: AddCallOptions, send: () => Promise<T>): Promise<T> {
    const { timeoutMs, signal } = bound;
    if (timeoutMs === undefined && signal === undefined) return send();
    const ids = jobIds();
    if (signal?.aborted) {
      return Promise.reject(
        new AddNotConfirmedError(this.name, ids, 'aborted', { mayBeEnqueued: false, cause: signal.reason }),
      );
    }
    const work = send();
    return new Promise<T>((resolve, reject) => {
      const giveUp = (error: AddNotConfirmedError): void => {
        cancelDeadline();
        signal?.removeEventListener('abort', onAbort);
        // The answer that comes later is dropped (a failure too: nobody awaits it any more).
        work.catch(() => {});
        this.#logger.warn('add not confirmed; the jobs may still be enqueued', {
          reason: error.reason,
          jobIds: ids.length > 20 ? [...ids.slice(0, 20), '…'] : ids,
          timeoutMs,
        });
        reject(error);
      };
      const onAbort = (): void =>
        giveUp(
          new AddNotConfirmedError(this.name, ids, 'aborted', { mayBeEnqueued: true, cause: signal?.reason }),
        );
      const cancelDeadline =
        timeoutMs === undefined
          ? () => {}
          : startDeadline(timeoutMs, () =>
              giveUp(new AddNotConfirmedError(this.name, ids, 'timeout', { timeoutMs, mayBeEnqueued: true })),
            );
      signal?.addEventListener('abort', onAbort, { once: true });
      work.then(
        (value) => {
          cancelDeadline();
          signal?.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          cancelDeadline();
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  async #add(records: JobRecord[], now: number, bound: AddCallOptions): Promise<AddResult[]> {
    if (records.length === 0) return [];
    let added: boolean[];
    try {
      added = await this.#confirmed(
        () => records.map((record) => record.id),
        bound,
        () => this.provider.add(this.name, records, now),
      );
    } catch (error) {
      throw this.#unencodable(records, error) ?? error;
    }
    const count = added.filter(Boolean).length;
    if (count > 0) this.#metrics.added.inc({ queue: this.name }, count);
    for (const [index, record] of records.entries()) {
      if (added[index]) publishJobEvent('added', { queue: this.name, jobId: record.id, name: record.name });
    }
    return records.map((record, index) => ({ id: record.id, added: added[index] ?? false }));
  }

  /**
   * Adds a parent and its children in one atomic step. The parent waits in `waiting-children`
   * until every child settles; its handler reads the results with `job.childrenResults()`.
   */
  async addFlow(
    flow: NewFlow<Data>,
    call?: AddCallOptions,
  ): Promise<{ id: string; childIds: string[]; added: boolean }> {
    this.#check();
    if (!this.provider.capabilities.flows) throw new UnsupportedOperationError(this.provider.name, 'flows');
    parseOptions('addFlow', flowSchema, flow);
    const bound = this.#bound(call);
    const [parentJob, ...childJobs] = await this.#validated<NewJob<Data>>(
      [flow, ...flow.children],
      (index) => (index === 0 ? 'data' : `children.${index - 1}.data`),
    );
    const now = this.#clock.now();
    const parent = this.#record(parentJob!, now, '');
    const onChildFailure = parseOptions(
      'onChildFailure',
      childFailurePolicySchema.default('fail'),
      flow.onChildFailure,
    );
    const children = childJobs.map((child, index) => ({
      ...this.#record(child, now, `children.${index}.`),
      parent: { id: parent.id, onChildFailure },
    }));
    parent.childCount = children.length;
    // Ids shared within the flow would make the parent wait for a child that is never added
    // (a second job with an id is a no-op, and one with the parent's id would overwrite it).
    const seen = new Set([parent.id]);
    const shared: ConfigIssue[] = [];
    for (const [index, child] of children.entries()) {
      if (seen.has(child.id))
        shared.push({
          path: `children.${index}.options.jobId`,
          message: `${child.id} is already a job of this flow`,
        });
      seen.add(child.id);
    }
    if (shared.length > 0) throw new ConfigError('addFlow', shared);
    const added = await this.#confirmed(
      () => [parent.id, ...children.map((child) => child.id)],
      bound,
      () => this.provider.addFlow(this.name, parent, children, now),
    );
    if (added) {
      this.#metrics.added.inc({ queue: this.name }, children.length + 1);
      for (const record of [parent, ...children])
        publishJobEvent('added', { queue: this.name, jobId: record.id, name: record.name });
    }
    return { id: parent.id, childIds: children.map((child) => child.id), added };
  }

  /** Reads a job (any state, while retained). Throws {@link UnsupportedOperationError} where unsupported. */
  async getJob(id: string): Promise<JobView<Data> | undefined> {
    if (!this.provider.capabilities.getJob) throw new UnsupportedOperationError(this.provider.name, 'getJob');
    return (await this.provider.getJob(this.name, id)) as JobView<Data> | undefined;
  }

  /** Jobs per state; also sets the `queue_depth_jobs` gauge (which scrapes count too, see `depthCacheMs`). */
  async counts(): Promise<JobCounts> {
    const counts = await this.provider.counts(this.name);
    this.#setDepth(counts);
    return counts;
  }

  /**
   * Asks the backend now (a `counts()` under `timeoutMs`, default 500: below `runHealthChecks`'s 800): `up` with the counts in
   * `details` when it answers, `down` with the error (a `TimeoutError` past the deadline) when it
   * does not, and after `close()`. For a service that only adds jobs; a worker's cheap `health()`
   * reports what its own calls saw. A count still unanswered from an earlier call is waited on,
   * not sent again, so probes against a hung backend keep one count in flight, not one each
   * (one unanswered for 10 × `timeoutMs` is given up and a new one sent).
   */
  async checkHealth(options: { timeoutMs?: number } = {}): Promise<HealthReport> {
    const { timeoutMs } = parseOptions('Queue.checkHealth', checkHealthOptionsSchema, options);
    return probeQueue(this.name, this.#closed, () => this.#countForHealth(timeoutMs), timeoutMs);
  }

  /** One count in flight for the probes; one unanswered for 10 × `timeoutMs` is given up (it may never settle). */
  #countForHealth(timeoutMs: number): Promise<JobCounts> {
    const now = this.#clock.now();
    if (this.#healthCount && now - this.#healthCount.startedAt < timeoutMs * 10)
      return this.#healthCount.count;
    const count = this.counts();
    this.#healthCount = { count, startedAt: now };
    const settled = () => {
      if (this.#healthCount?.count === count) this.#healthCount = undefined;
    };
    count.then(settled, settled);
    return count;
  }

  /**
   * Stops the queue's workers from taking new jobs (in-flight and leased-ahead ones finish): in
   * every process, except on RabbitMQ without a state store, where only this provider's consumers
   * pause (`capabilities.globalPause`).
   */
  async pause(): Promise<void> {
    await this.provider.pause(this.name);
  }

  /** Lets workers take jobs again. */
  async resume(): Promise<void> {
    await this.provider.resume(this.name);
  }

  /**
   * Removes every waiting job (and delayed ones with `{ delayed: true }`), and the flow parents
   * waiting on a child it removed (they would wait for ever). Returns how many, parents included.
   */
  async drain(options: { delayed?: boolean } = {}): Promise<number> {
    return this.provider.drain(this.name, options.delayed ?? false);
  }

  /**
   * Cancels a job: a waiting or delayed one (or a flow parent waiting for its children) goes
   * straight to the DLQ (`removed`); an active one has its handler's signal aborted with
   * {@link JobCancelledError} and is not retried (`signalled`). A flow parent that waited on a
   * removed child with policy `fail` is dead-lettered with it, and counted in this queue's
   * `_jobs_dead_lettered_total` and published as `dead-lettered` here (no worker's call moved it).
   */
  async cancel(id: string): Promise<CancelOutcome> {
    if (!this.provider.capabilities.cancel) throw new UnsupportedOperationError(this.provider.name, 'cancel');
    const { outcome, parentsDeadLettered } = await this.provider.cancel(this.name, id, this.#clock.now());
    if (parentsDeadLettered) this.#parentsDeadLettered(parentsDeadLettered);
    return outcome;
  }

  /** Counted and published as a worker does the parents of a child it dead-lettered. */
  #parentsDeadLettered(parents: readonly DeadLetteredParent[]): void {
    this.#metrics.deadLettered.inc({ queue: this.name }, parents.length);
    for (const parent of parents) {
      publishJobEvent('deadLettered', {
        queue: this.name,
        jobId: parent.id,
        name: parent.name,
        error: parent.message,
        attempt: 0,
      });
    }
  }

  /** Recovers stalled jobs and applies retention now (workers also do this periodically). */
  async clean(retention: RetentionOptions = {}, maxStalls = 1): Promise<MaintenanceResult> {
    const policy: RetentionPolicy = parseOptions('retention', retentionSchema, retention);
    const result = await this.provider.maintain(this.name, this.#clock.now(), maxStalls, policy);
    // Counted as a worker's maintenance pass counts them.
    const labels = { queue: this.name };
    if (result.recovered + result.deadLettered > 0) {
      this.#metrics.stalled.inc(labels, result.recovered + result.deadLettered);
    }
    const deadLettered = result.deadLettered + (result.parentsDeadLettered ?? 0);
    if (deadLettered > 0) this.#metrics.deadLettered.inc(labels, deadLettered);
    return result;
  }

  /**
   * The dead-letter queue, with each job's error history: jobs that used all their attempts,
   * stalled past `maxStalls`, were cancelled, or whose flow child failed (policy `fail`).
   */
  readonly dlq = {
    /** Newest first. */
    list: async (options: { offset?: number; limit?: number } = {}): Promise<JobView<Data>[]> => {
      if (!this.provider.capabilities.dlqInspect)
        throw new UnsupportedOperationError(this.provider.name, 'dlq.list');
      return (await this.provider.listDead(
        this.name,
        options.offset ?? 0,
        options.limit ?? 100,
      )) as JobView<Data>[];
    },
    /** Moves one dead job back to waiting with a fresh set of attempts. */
    retry: async (id: string): Promise<boolean> =>
      (await this.provider.redrive(this.name, [id], this.#clock.now())) > 0,
    /** Redrives every dead job. Returns how many. */
    retryAll: async (): Promise<number> => this.provider.redrive(this.name, undefined, this.#clock.now()),
    /** Deletes dead jobs (all, or the given ids). Returns how many. */
    purge: async (ids?: string[]): Promise<number> => this.provider.purgeDead(this.name, ids),
  };

  /**
   * Marks the queue closed: later adds throw `ClosedError`; reads, `cancel`, `pause` and the DLQ
   * still answer, and workers built on it go on (the provider is closed by its owner).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatchDepth();
    // Out of queue_depth_stale; the last queue object of the name takes queue_depth_jobs with it.
    this.#staleVote.release();
    this.#logger.debug('queue closed');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
