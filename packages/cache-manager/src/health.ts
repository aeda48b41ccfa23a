import {
  type BreakerState,
  ClosedError,
  type HealthProbeOutcome,
  type HealthReport,
  probedHealth,
} from '@noa/core';

/** What a cache knows of its tiers, as {@link cacheHealth} reads it. */
export interface CacheHealthState {
  closed: boolean;
  /** False for an L2-only cache (`l1: false`): reported as `l1: 'none'`. */
  l1?: boolean;
  l1Entries: number;
  onBackendError: 'degrade' | 'throw';
  /**
   * Undefined for a memory-only cache. `answering`: Redis as a whole answers (`RedisTier.healthy`);
   * `partFailing`: on a Cluster, one master's calls are failing while the others answer
   * (`RedisTier.partFailing`).
   */
  l2: { breaker: BreakerState; answering: boolean; partFailing: boolean; lastError: unknown } | undefined;
  now: number;
}

/**
 * The cache's {@link HealthReport}. Redis with its breaker not closed, or not answering as a whole
 * (on one node: its last call failed; on a Cluster: a call failed that no master answered around),
 * leaves L1 serving alone: `degraded` (reads fall back to L1 and the factory, writes stay local),
 * or `down` with `onBackendError: 'throw'`, where those calls reject instead. On a Cluster whose
 * masters answer but one (its keys' calls failing within core's `partAnswerWindowMs`), the cache
 * is `degraded` whatever `onBackendError` says, `l2Answering` true and `l2PartFailing` true: the
 * other masters' keys are served from Redis, that master's from L1 and the factory (or reject).
 */
export function cacheHealth(state: CacheHealthState): HealthReport {
  const details: Record<string, unknown> = { l1Entries: state.l1Entries };
  if (state.l1 === false) details.l1 = 'none';
  const report = (status: HealthReport['status'], cause?: unknown): HealthReport =>
    cause === undefined
      ? { component: 'cache', status, checkedAt: state.now, details }
      : { component: 'cache', status, checkedAt: state.now, details, cause };
  if (state.closed) return report('down', new ClosedError('cache-manager'));
  if (state.l2 === undefined) {
    details.l2 = 'none';
    return report('up');
  }
  details.l2 = state.l2.breaker;
  details.l2Answering = state.l2.answering;
  details.l2PartFailing = state.l2.partFailing;
  details.onBackendError = state.onBackendError;
  if (state.l2.breaker === 'closed' && state.l2.answering)
    return state.l2.partFailing ? report('degraded', state.l2.lastError) : report('up');
  return report(state.onBackendError === 'throw' ? 'down' : 'degraded', state.l2.lastError);
}

/**
 * The report of `checkHealth()`: the passive {@link cacheHealth}, corrected by a PING of Redis
 * (@noa/core's `probedHealth`). A PING that failed or got no answer in time makes Redis not
 * answering (`degraded`, or `down` with `onBackendError: 'throw'`, its error as `cause`,
 * `l2Answering` false) whatever the breaker says; one that was answered makes a closed breaker
 * `up`, while a breaker not closed keeps the passive verdict. A memory-only or closed cache keeps
 * its passive report. `details.probe`: `answered`, `failed` or `timeout`.
 */
export function checkedCacheHealth(state: CacheHealthState, probe: HealthProbeOutcome): HealthReport {
  const passive = cacheHealth(state);
  if (state.closed || state.l2 === undefined) return passive;
  return probedHealth(passive, probe, {
    failStatus: state.onBackendError === 'throw' ? 'down' : 'degraded',
    breakerClosed: state.l2.breaker === 'closed',
    notAnswering: { l2Answering: false },
  });
}
