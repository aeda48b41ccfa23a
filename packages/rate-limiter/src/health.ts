import {
  type BreakerState,
  ClosedError,
  type HealthProbeOutcome,
  type HealthReport,
  probedHealth,
} from '@noa/core';
import type { FailMode } from './limiter-options.js';

/** What a limiter knows of its store, as {@link limiterHealth} reads it. */
export interface LimiterHealthState {
  closed: boolean;
  /** `memory`, `redis`… */
  store: string;
  failMode: FailMode;
  /** Undefined for a store in this process (nothing can fail). */
  remote: { breaker: BreakerState; lastFailure: unknown } | undefined;
  now: number;
}

/**
 * The limiter's {@link HealthReport}. A remote store whose breaker is not closed, or whose last
 * check failed (a failure below the breaker's threshold, with little traffic), is bypassed by the
 * fail mode: `degraded` when that mode still answers by the limits or admits (`local`: this
 * instance's share; `open`: everything), `down` with `closed`, which refuses every request.
 */
export function limiterHealth(state: LimiterHealthState): HealthReport {
  const details: Record<string, unknown> = { store: state.store, failMode: state.failMode };
  const report = (status: HealthReport['status'], cause?: unknown): HealthReport =>
    cause === undefined
      ? { component: 'rate-limiter', status, checkedAt: state.now, details }
      : { component: 'rate-limiter', status, checkedAt: state.now, details, cause };
  if (state.closed) return report('down', new ClosedError('RateLimiter'));
  if (state.remote === undefined) return report('up');
  const { breaker, lastFailure } = state.remote;
  details.breaker = breaker;
  const bypassed = breaker !== 'closed' || lastFailure !== undefined;
  details.fallback = bypassed;
  if (!bypassed) return report('up');
  return report(state.failMode === 'closed' ? 'down' : 'degraded', lastFailure);
}

/**
 * The report of `checkHealth()`: the passive {@link limiterHealth}, corrected by a PING of the
 * store (@noa/core's `probedHealth`). A PING that failed or got no answer in time makes the store
 * not answering, whatever the breaker says: the fail mode's verdict (`degraded` for `local` and
 * `open`, `down` for `closed`), its error as `cause`. One that was answered makes a closed breaker
 * `up`, while a breaker not closed keeps the passive verdict. `details.probe`: `answered`,
 * `failed`, `timeout`, or `unsupported` (`probe` undefined: a remote store without `ping()`, the
 * passive report). A store in this process or a closed limiter keeps its passive report.
 */
export function checkedLimiterHealth(
  state: LimiterHealthState,
  probe: HealthProbeOutcome | undefined,
): HealthReport {
  const passive = limiterHealth(state);
  if (state.closed || state.remote === undefined) return passive;
  if (probe === undefined) return { ...passive, details: { ...passive.details, probe: 'unsupported' } };
  return probedHealth(passive, probe, {
    failStatus: state.failMode === 'closed' ? 'down' : 'degraded',
    breakerClosed: state.remote.breaker === 'closed',
  });
}
