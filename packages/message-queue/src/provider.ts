import type { ChildrenResults, JobCounts, JobInfo, JobRecord } from './job-record.js';

/** The tries a `release` gives back ran past their leases: count a stall each (see `release`). */
export interface StalledRelease {
  maxStalls: number;
}

/**
 * What a `release` with {@link StalledRelease} did: `stalled` jobs counted a stall (those it
 * gave back, not those another run holds), `deadLettered` of them went past `maxStalls`.
 */
export interface StalledReleaseResult {
  stalled: number;
  deadLettered: number;
  /**
   * Jobs dead-lettered as cancelled instead of released (cancelled while active, the cancel
   * unheard by their worker), with or without `stalled`. Absent: none.
   */
  cancelled?: number;
  /** Flow parents dead-lettered because one of those jobs was their child (policy `fail`). */
  parentsDeadLettered?: number;
}

/** A flow parent dead-lettered because a child failed (policy `fail`): its id, name and error message. */
export interface DeadLetteredParent {
  id: string;
  name: string;
  message: string;
}

/**
 * What a provider can do. The conformance suite skips exactly the features set to `false`
 * (and prints why); every other behaviour must be the same on every provider.
 */
export interface ProviderCapabilities {
  /** `getJob` by id (RabbitMQ cannot look a message up). */
  getJob: boolean;
  /** Exact `counts` of every state; otherwise only waiting/active are known. */
  exactCounts: boolean;
  /** Strict priority order across the whole queue. */
  priorities: boolean;
  /** Per-group weighted fair dispatch. */
  groups: boolean;
  /** Parent/child flows. */
  flows: boolean;
  /** Cancel a waiting or active job. */
  cancel: boolean;
  /** Stored progress readable by `getJob`. */
  progress: boolean;
  /** List and redrive the dead-letter queue by id. */
  dlqInspect: boolean;
  /** `jobId` dedupe (RabbitMQ has no index of message ids). */
  dedupe: boolean;
  /** Jobs of a worker that stops heart-beating are recovered when its lease expires (else: when its connection drops). */
  leaseRecovery: boolean;
  /** `pause` holds every worker of the queue, in every process (else: only this provider's workers). */
  globalPause: boolean;
}

/** Every capability: what a provider with its own job state (memory, Redis) supports. */
export const allCapabilities: Readonly<ProviderCapabilities> = Object.freeze({
  getJob: true,
  exactCounts: true,
  priorities: true,
  groups: true,
  flows: true,
  cancel: true,
  progress: true,
  dlqInspect: true,
  dedupe: true,
  leaseRecovery: true,
  globalPause: true,
});

/**
 * A finished try reported by a worker. A failed try's `record.data` is the object its handler
 * held, with any edits the handler made in place: a provider stores the job's payload as it
 * delivered it (every try, `getJob` and the DLQ show the payload as added), not that object.
 */
export type Settlement =
  | { kind: 'complete'; record: JobRecord; result: unknown }
  /** `retryAt` null sends the job to the DLQ; `record` already holds the new error history. */
  | { kind: 'fail'; record: JobRecord; retryAt: number | null };

/** One worker round trip: report finished tries and take new ones. */
export interface ExchangeRequest {
  settle: Settlement[];
  /** How many jobs to lease (0: settle only). */
  fetch: number;
  /**
   * Lease end of fetched jobs (ms since epoch, caller's clock). A provider with a clock of its
   * own (Redis `TIME`) keeps only the duration, `leaseUntil - now`, and ends the lease by it.
   */
  leaseUntil: number;
  now: number;
  /** Move due delayed jobs to waiting first. */
  promoteDelayed: boolean;
  /** Group weights for fair dispatch (`defaultWeight` for groups not listed). */
  groupWeights: Record<string, number>;
  defaultGroupWeight: number;
  /**
   * The most jobs this worker may run at once when that can grow past `fetch` (a worker with
   * `autoscale`: its `max`). A provider that sizes a broker window from the first fetch
   * (RabbitMQ's consumer prefetch) sizes it to this instead, or the scaled-up worker could never
   * get more deliveries at once than its first fetch.
   */
  window?: number;
}

/** A completion the provider could not store: its result is over what the backend takes in one call. */
export interface OversizedSettlement {
  id: string;
  /** The encoded size of the completion (bytes). */
  bytes: number;
  /** What the backend takes (bytes; Redis: its `proto-max-bulk-len`). */
  maxBytes: number;
}

/** The answer to an {@link ExchangeRequest}. */
export interface ExchangeResponse {
  /** The leased jobs, each with its lease token in `lease` (providers that track leases). */
  jobs: JobRecord[];
  /**
   * Ids of settlements refused because another lease holds the job (the settling worker stalled
   * past its lease and the job was leased again). Nothing of such a settlement was stored.
   */
  stale?: string[];
  /**
   * Ids of failed tries sent as retries (`retryAt` set) that the provider dead-lettered instead,
   * because the retry could not be carried (RabbitMQ: its record, the new error added, is over
   * `maxMessageBytes`). The worker reports them as dead-lettered, not retried. Absent: every
   * settlement stored was stored as asked.
   */
  deadLettered?: string[];
  /**
   * Completions not stored because their result is over what the backend takes in one call
   * (Redis: `proto-max-bulk-len`); nothing of them was stored and their jobs are still leased
   * to the worker, which fails each try with `ResultTooLargeError`. Absent: none.
   */
  oversized?: OversizedSettlement[];
  /**
   * Flow parents this exchange dead-lettered because a child it dead-lettered failed (policy
   * `fail`): the worker counts and publishes them as dead-lettered. Absent: none.
   */
  parentsDeadLettered?: DeadLetteredParent[];
  /**
   * Ids of settlements not applied yet, nor refused: the try's delivery was gone (RabbitMQ
   * without a state store: its channel closed before the outcome was acknowledged) and no
   * redelivery of the job was here, so the provider keeps the outcome to settle the redelivery
   * if the broker gives it back to this process. The worker reports nothing of them yet and
   * sends each again (the same object) with its later exchanges: an answer that no longer lists
   * it here nor in `stale` means it settled the redelivery (report it as stored, with
   * `deadLettered` as usual); `stale` means it was forgotten first (the redelivery went
   * elsewhere). Absent: none.
   */
  awaitingRedelivery?: string[];
  /** When nothing was fetched: the earliest delayed job's due time, if known. */
  nextDueAt?: number;
}

/** Retention limits applied by {@link QueueProvider.maintain}. */
export interface RetentionPolicy {
  completedCount: number;
  completedAgeMs: number;
  deadCount: number;
  deadAgeMs: number;
}

/** Result of a maintenance pass. */
export interface MaintenanceResult {
  /** Jobs whose lease had expired and that were put back to waiting. */
  recovered: number;
  /** Jobs that stalled more than `maxStalls` times, or were cancelled while active, and were dead-lettered. */
  deadLettered: number;
  /**
   * Flow parents dead-lettered because one of the `deadLettered` jobs was their child (policy
   * `fail`); not in `deadLettered`, which counts stalled jobs. Absent: none.
   */
  parentsDeadLettered?: number;
  /** Completed and dead jobs removed by retention. */
  removed: number;
}

/** A job whose lease is renewed: its id and the token of the lease (see `JobRecord.lease`). */
export type LeasedJob = Pick<JobRecord, 'id' | 'lease'>;

/** The answer to {@link QueueProvider.extendLeases}. */
export interface LeaseRenewal {
  /** Ids of jobs cancelled while active (the worker aborts them). */
  cancelled: string[];
  /**
   * Ids whose lease had ended (another worker holds the job, it is no longer active, or, on
   * RabbitMQ without a store, the channel it came on closed): not renewed. The worker aborts
   * their handlers with `LeaseLostError`.
   */
  lost: string[];
  /**
   * True when the renewal was answered without the queue's backend: on RabbitMQ, by the state
   * store or by this process, while the broker is unreachable or was not heard from within the
   * last second (a frozen broker keeps its connection open). The worker then does not take it
   * for the backend answering (it would end, or hide, the broker's outage).
   */
  backendDown?: boolean;
}

/** Outcome of `cancel`. */
export type CancelOutcome = 'removed' | 'signalled' | 'not-found';

/**
 * What {@link QueueProvider.cancel} did: its outcome and, when the job removed was a flow child
 * whose parent waited on it with policy `fail`, that parent (dead-lettered with it), which the
 * `Queue` counts and publishes as dead-lettered.
 */
export interface CancelResult {
  outcome: CancelOutcome;
  parentsDeadLettered?: DeadLetteredParent[];
}

/**
 * The one interface every backend implements. Queue names are passed per call so one
 * provider (one connection) serves many queues. Times come from the caller's clock, except
 * lease expiry on a provider with a clock of its own (Redis `TIME`).
 */
export interface QueueProvider {
  readonly name: string;
  readonly capabilities: ProviderCapabilities;
  /** Enqueues records; a record whose id is held already is skipped (`false` at its index). */
  add(queue: string, records: JobRecord[], now: number): Promise<boolean[]>;
  /** Enqueues a parent (held in waiting-children) and its children atomically. */
  addFlow(queue: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean>;
  exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse>;
  /**
   * Optional fast path: settles a completed try at once, outside the worker's fetch loop, for
   * backends whose acknowledgement is a local fire-and-forget frame (AMQP `basic.ack`). Returns
   * true when it took the settlement; false sends it through `exchange` as usual.
   */
  settleNow?(queue: string, settlement: Settlement): boolean;
  /**
   * Pushes the leases of `jobs` to `leaseUntil` and returns the ids among them that were
   * cancelled while active (recorded by `cancel`, so a worker that missed the `onCancel`
   * message still aborts them at its next heartbeat; providers without `cancel` return none),
   * and those whose lease had ended, which are not renewed. `now` is the caller's clock when it
   * computed `leaseUntil` (a provider timing leases by its own clock keeps `leaseUntil - now`).
   */
  extendLeases(
    queue: string,
    jobs: readonly LeasedJob[],
    leaseUntil: number,
    now: number,
  ): Promise<LeaseRenewal>;
  /**
   * Optional: a worker of `queue` is closing and fetches no more. A backend that pushes jobs
   * ahead to this process (AMQP prefetch) stops consuming so they go to other processes; the
   * next fetch (another worker of the queue here) starts again. Called before `release`.
   */
  stopFetching?(queue: string): Promise<void>;
  /**
   * Puts active jobs back to waiting without counting a try (graceful close); a job whose
   * lease (`record.lease`) had ended is left alone. With `stalled`, the tries ran past their
   * leases (the worker stalled: `LeaseLostError` `'expired'`): each counts as a stall, as lease
   * recovery counts one, and a job past `stalled.maxStalls` is dead-lettered (`JobStalledError`)
   * instead of waiting again. Otherwise a job that stalls every run was given back for ever.
   * It returns what it counted (the worker's metrics): with `stalled` always, else when it
   * dead-lettered jobs (cancelled ones, and flow parents with them); nothing otherwise.
   */
  release(
    queue: string,
    records: JobRecord[],
    now: number,
    stalled?: StalledRelease,
    // biome-ignore lint/suspicious/noConfusingVoidType: a provider of your own written before `stalled` returns Promise<void>, and still type-checks
  ): Promise<StalledReleaseResult | undefined | void>;
  /**
   * Recovers expired leases and applies retention. Safe to run from many workers at once. A
   * provider timing leases by its own clock (Redis) judges expiry by it, not by `now`.
   */
  maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult>;
  /** Resolves when new work may be available, or after `timeoutMs`, or when `signal` aborts. */
  waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void>;
  getJob(queue: string, id: string): Promise<JobInfo | undefined>;
  counts(queue: string): Promise<JobCounts>;
  pause(queue: string): Promise<void>;
  resume(queue: string): Promise<void>;
  /**
   * Removes waiting (and, if asked, delayed) jobs, and the flow parents waiting on a child it
   * removed. Returns how many, parents included.
   */
  drain(queue: string, includeDelayed: boolean): Promise<number>;
  setProgress(queue: string, id: string, progress: unknown): Promise<void>;
  /**
   * Cancels a job: a waiting, delayed or waiting-children one is dead-lettered at once
   * (`'removed'`); an active one is recorded as cancelled and its worker told (`'signalled'`).
   * The record is durable: the worker also learns it from `extendLeases`, and `maintain`
   * dead-letters the job instead of requeueing it if its worker died. It is dropped when the
   * job leaves the active state, so it never touches a later run of the same id. A flow parent
   * dead-lettered with a removed child (policy `fail`) is returned in `parentsDeadLettered`.
   */
  cancel(queue: string, id: string, now: number): Promise<CancelResult>;
  /** Subscribes to cancellations of active jobs; returns the unsubscribe function. */
  onCancel(queue: string, listener: (id: string) => void): Promise<() => void>;
  childrenResults(queue: string, parentId: string): Promise<ChildrenResults>;
  listDead(queue: string, offset: number, limit: number): Promise<JobInfo[]>;
  /** Moves dead jobs (all when `ids` is undefined) back to waiting with fresh attempts. Returns how many. */
  redrive(queue: string, ids: string[] | undefined, now: number): Promise<number>;
  /** Deletes dead jobs (all when `ids` is undefined). Returns how many. */
  purgeDead(queue: string, ids: string[] | undefined): Promise<number>;
  close(): Promise<void>;
}
