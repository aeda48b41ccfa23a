import type { Backoff } from './backoff.js';
import type { ChildFailurePolicy } from './job-options.js';

/** One failed try of a job, kept in its error history (and shown in the DLQ). */
export interface JobErrorEntry {
  /**
   * The tries the job had made (`attemptsMade`) when the entry was written: a failed try's own
   * number (1-based); for an entry the backend writes (`JobStalledError`, `JobCancelledError`,
   * `ChildFailedError`) the tries made before it, 0 if none (a stall is not a try). The same on
   * every provider.
   */
  attempt: number;
  name: string;
  message: string;
  code?: string;
  at: number;
}

/** The link from a flow child to its parent. */
export interface ParentLink {
  id: string;
  onChildFailure: ChildFailurePolicy;
}

/**
 * A job as providers store it: plain JSON-safe data. Providers never interpret `data`.
 */
export interface JobRecord {
  id: string;
  name: string;
  data: unknown;
  priority: number;
  attempts: number;
  backoff: Backoff;
  timeoutMs?: number;
  removeOnComplete: boolean;
  group?: string;
  parent?: ParentLink;
  /** For a flow parent: how many children it waits for. */
  childCount?: number;
  attemptsMade: number;
  errors: JobErrorEntry[];
  createdAt: number;
  /** When the job became (or becomes) runnable: `createdAt + delay`, or the retry time. */
  availableAt: number;
  /**
   * Set on a record handed out by `QueueProvider.exchange`: the token of that lease. Every later
   * step of the lease (settlement, renewal, release) carries it back, and a provider refuses a
   * step whose token is not the job's current lease (a worker that stalled past its lease while
   * another one runs the job). Never stored with the job.
   */
  lease?: string;
}

/** Where a job is in its life. `failed` jobs are in the dead-letter queue. */
export type JobState = 'waiting' | 'delayed' | 'active' | 'waiting-children' | 'completed' | 'failed';

/** A job as returned by `getJob` / `dlq.list`. */
export interface JobInfo extends JobRecord {
  state: JobState;
  progress?: unknown;
  result?: unknown;
  finishedAt?: number;
}

/** Jobs per state. */
export interface JobCounts {
  waiting: number;
  delayed: number;
  active: number;
  waitingChildren: number;
  completed: number;
  failed: number;
  paused: boolean;
}

/** The settled results of a flow parent's children, by child id. */
export interface ChildrenResults {
  results: Record<string, unknown>;
  failures: Record<string, JobErrorEntry>;
}
