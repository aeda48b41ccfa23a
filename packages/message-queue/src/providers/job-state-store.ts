import type { ChildrenResults, JobCounts, JobInfo, JobRecord } from '../job-record.js';
import type {
  CancelResult,
  DeadLetteredParent,
  LeasedJob,
  LeaseRenewal,
  MaintenanceResult,
  OversizedSettlement,
  RetentionPolicy,
  Settlement,
  StalledRelease,
  StalledReleaseResult,
} from '../provider.js';

/**
 * A message the broker must carry for the store: the job's record and the token the store gave
 * it. The token travels with the message; a delivery whose token is older than the job's is
 * stale (the job was requeued with a newer message) and is dropped.
 */
export interface StatePublish {
  record: JobRecord;
  token: number;
}

/** A message, as the store judges it: the job id and the message's token. */
export interface StateDelivery {
  id: string;
  token: number;
  /**
   * Redelivered by the broker after its holder's channel closed, and not held by a worker of
   * this process: it runs even though the job is active (its holder is presumed dead).
   */
  orphaned?: boolean;
}

/**
 * What to do with a delivery: `run` it (the job is now active), `drop` it (acknowledge without
 * running: the job is finished, cancelled, removed, already running, or the message is stale),
 * or `requeue` it (the queue is paused).
 */
export type DeliveryVerdict = 'run' | 'drop' | 'requeue';

/** One worker round trip against the store. */
export interface StateExchange {
  settle: Settlement[];
  deliveries: StateDelivery[];
  now: number;
  leaseUntil: number;
}

/** The answer to a {@link StateExchange}. */
export interface StateExchangeResult {
  /** One per delivery, in order. */
  verdicts: DeliveryVerdict[];
  /**
   * One per delivery, when any differs from its message's token: the lease of a `run` that took
   * the job over from a run presumed dead (its message redelivered after the holder's channel
   * closed, or its lease expired). The run taken over held the message's token, so its renewals
   * and late settlement are refused although both ran the same message.
   */
  leases?: (string | undefined)[];
  /** Retries and released flow parents to publish (each also in the store's outbox). */
  publish: StatePublish[];
  /**
   * Ids of settlements refused: their job is active under a newer message than the one their
   * try ran (`record.lease`, the message token), so another worker runs it.
   */
  stale?: string[];
  /**
   * Completions not stored, their result over what the store takes in one call (see
   * `ExchangeResponse.oversized`): their messages are to stay unacknowledged until their try's
   * failure is stored.
   */
  oversized?: OversizedSettlement[];
  /** Flow parents dead-lettered because a child these settlements dead-lettered failed (policy `fail`). */
  parentsDeadLettered?: DeadLetteredParent[];
}

/** A queue event the store broadcasts to every process. */
export type StateEvent =
  | { type: 'cancel'; id: string }
  | { type: 'pause' }
  | { type: 'resume' }
  /** A job group seen for the first time: its queue is to be consumed. */
  | { type: 'group'; group: string };

/**
 * The job state a broker cannot keep, held beside it (see `RedisJobStateStore`): job records
 * and states, dedupe claims, results, progress, flows, leases, the dead-letter queue and the
 * pause flag. The provider keeps using the broker as the transport; the store decides whether
 * a delivered message runs. Messages the store must have published (retries, recoveries,
 * redrives, released flow parents) sit in an outbox until confirmed, so a crash between a state
 * change and its publish is repaired by `maintain`.
 */
export interface JobStateStore {
  readonly name: string;
  /**
   * Claims ids: per record, the token its message is published with, or 0 when the id is held.
   * Tokens are never reused within a queue, not even for an id removed and added again: a
   * message of the removed job is then stale, and no lease (a message token) names two runs.
   */
  add(queue: string, records: JobRecord[], now: number): Promise<number[]>;
  /**
   * Claims a flow: the tokens of the children's messages, in order (of the parent's when it has
   * no children; else it is published when they settle), or undefined when an id is held.
   */
  addFlow(
    queue: string,
    parent: JobRecord,
    children: JobRecord[],
    now: number,
  ): Promise<number[] | undefined>;
  /** Releases claims whose publish the broker did not confirm (their add failed). */
  unclaim(queue: string, claims: StateDelivery[]): Promise<void>;
  /** The broker confirmed these messages: takes them off the outbox. */
  confirm(queue: string, published: StateDelivery[]): Promise<void>;
  exchange(queue: string, request: StateExchange): Promise<StateExchangeResult>;
  /**
   * Pushes the leases of jobs still active under their message (`lease`: its token, as a
   * string); see `QueueProvider.extendLeases`.
   */
  extendLeases(queue: string, jobs: readonly LeasedJob[], leaseUntil: number): Promise<LeaseRenewal>;
  /**
   * Active jobs back to queued (their messages are requeued as they are), unless active under
   * another message. With `stalled`, each counts a stall and one past `maxStalls` is
   * dead-lettered instead (see `QueueProvider.release`).
   */
  release(
    queue: string,
    jobs: readonly LeasedJob[],
    now: number,
    stalled?: StalledRelease,
    // biome-ignore lint/suspicious/noConfusingVoidType: a provider of your own written before `stalled` returns Promise<void>, and still type-checks
  ): Promise<StalledReleaseResult | undefined | void>;
  /** Expired leases (and unconfirmed outbox entries) come back as messages to publish. */
  maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult & { publish: StatePublish[] }>;
  getJob(queue: string, id: string, now: number): Promise<JobInfo | undefined>;
  counts(queue: string, now: number): Promise<JobCounts>;
  pause(queue: string): Promise<void>;
  resume(queue: string): Promise<void>;
  isPaused(queue: string): Promise<boolean>;
  /** Every job group the queue has seen (each has its own broker queue). */
  groups(queue: string): Promise<string[]>;
  /** Forgets waiting (and delayed) jobs; returns how many. */
  drain(queue: string, includeDelayed: boolean, now: number): Promise<number>;
  setProgress(queue: string, id: string, progress: unknown): Promise<void>;
  cancel(queue: string, id: string, now: number): Promise<CancelResult & { publish: StatePublish[] }>;
  /** Listens to the queue's events from every process; resolves once listening. */
  subscribe(queue: string, listener: (event: StateEvent) => void): Promise<() => void>;
  childrenResults(queue: string, parentId: string): Promise<ChildrenResults>;
  listDead(queue: string, offset: number, limit: number, now: number): Promise<JobInfo[]>;
  /** Moves dead jobs (all when `ids` is undefined) back to queued; returns what to publish. */
  redrive(queue: string, ids: string[] | undefined, now: number): Promise<StatePublish[]>;
  purgeDead(queue: string, ids: string[] | undefined): Promise<number>;
  /** Stops listening (the caller's Redis connection stays open). */
  close(): Promise<void>;
}
