import { ClosedError, type HealthReport, withDeadline } from '@noa/core';
import type { BackendState } from './backend-health.js';
import type { JobCounts } from './job-record.js';

/** What a worker knows of its backend, as {@link workerHealth} reads it. */
export interface WorkerHealthState {
  queue: string;
  /** `close()` has been called (it may still be draining). */
  closing: boolean;
  started: boolean;
  /** `unknown` until the worker's first backend call is answered or fails. */
  backendState: BackendState;
  /** The error of the outage under way (a call's, or `BackendUnavailableError` for one unanswered). */
  backendError: unknown;
  activeJobs: number;
  concurrency: number;
  now: number;
}

/**
 * The worker's {@link HealthReport}: `down` from a backend call that failed or went unanswered for
 * `backendTimeoutMs` until the next answered one (what `backendUp` and `backend_up` say), before
 * the first answer (`backendState` `unknown`: not ready until proven, as a Kubernetes readiness
 * probe), and from `close()` on (a draining worker takes no new jobs); else `up`. A worker has no fallback:
 * no `degraded`.
 */
export function workerHealth(state: WorkerHealthState): HealthReport {
  const details = {
    queue: state.queue,
    started: state.started,
    backendUp: state.backendState === 'up',
    backendState: state.backendState,
    activeJobs: state.activeJobs,
    concurrency: state.concurrency,
  };
  const base = { component: `worker:${state.queue}`, checkedAt: state.now, details };
  if (state.closing) return { ...base, status: 'down', cause: new ClosedError(`Worker of ${state.queue}`) };
  if (state.backendState !== 'up')
    return state.backendError === undefined
      ? { ...base, status: 'down' }
      : { ...base, status: 'down', cause: state.backendError };
  return { ...base, status: 'up' };
}

/**
 * A queue's active probe: `counts()` under `timeoutMs`; `up` with the counts when the backend
 * answers, `down` with the error (a `TimeoutError` past the deadline) when it does not.
 */
export async function probeQueue(
  queue: string,
  closed: boolean,
  counts: () => Promise<JobCounts>,
  timeoutMs: number,
): Promise<HealthReport> {
  const component = `queue:${queue}`;
  if (closed)
    return {
      component,
      status: 'down',
      checkedAt: Date.now(),
      details: { queue },
      cause: new ClosedError(`Queue ${queue}`),
    };
  try {
    const found = await withDeadline(counts(), timeoutMs, `counts of queue ${queue}`);
    return { component, status: 'up', checkedAt: Date.now(), details: { queue, counts: found } };
  } catch (error) {
    return { component, status: 'down', checkedAt: Date.now(), details: { queue }, cause: error };
  }
}
