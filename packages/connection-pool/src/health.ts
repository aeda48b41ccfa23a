import {
  HealthProbeGate,
  type HealthProbeOptions,
  type HealthReport,
  healthProbeOptionsSchema,
} from '@noa/core';
import { HealthCheckTimeoutError, PoolClosedError } from './errors.js';
import type { PoolStats } from './pool.js';

/**
 * Options of every pool's active health check (`checkHealth()` of the SQL pools and `RedisPool`,
 * `MongoPool#health()`): @noa/core's `healthProbeOptionsSchema` (strict, `timeoutMs` default
 * 500 ms, `maxAgeMs` default 1000 ms), the same for the cache's and the rate limiter's checks.
 */
export const checkHealthOptionsSchema = healthProbeOptionsSchema;

/** Options of `checkHealth()` / `MongoPool#health()`. */
export type CheckHealthOptions = HealthProbeOptions;

/**
 * One pool's active health check: @noa/core's {@link HealthProbeGate} (one probe for concurrent
 * calls, a recent answer reused, each caller bounded by its `timeoutMs`) whose timeout is this
 * package's `HealthCheckTimeoutError` (`NOA_POOL_HEALTH_CHECK_TIMEOUT`).
 */
export class HealthCheckGate<Report> extends HealthProbeGate<Report> {
  constructor(
    pool: string,
    probe: () => Promise<Report>,
    timedOut: (error: HealthCheckTimeoutError) => Report,
    /** The report of a closed pool (asks nothing, never reused), else undefined. */
    closed: () => Report | undefined,
  ) {
    super({ probe, timedOut: (timeoutMs) => timedOut(new HealthCheckTimeoutError(pool, timeoutMs)), closed });
  }
}

/** One server as {@link clusterReport} reads it. */
export interface ServerState {
  healthy: boolean;
  reason: 'lag' | 'down' | 'unresponsive' | undefined;
  /** The error behind `reason` (not its text). */
  error: unknown;
}

/**
 * The {@link HealthReport} of a SQL cluster: `down` once closed or while the primary is down or
 * unresponsive (writes fail), and while no replica is in rotation with `replicaFallback: 'error'`
 * (reads fail); `degraded` while some replica is out of rotation (its reads go to the others or
 * the primary); else `up`.
 */
export function clusterReport(
  name: string,
  state: {
    closed: boolean;
    primary: ServerState;
    replicas: readonly ServerState[];
    replicaFallback: 'primary' | 'error';
    now: number;
  },
): HealthReport {
  const inRotation = state.replicas.filter((replica) => replica.healthy).length;
  const details = {
    primary: state.primary.reason ?? 'up',
    replicas: state.replicas.length,
    replicasInRotation: inRotation,
  };
  const report = (status: HealthReport['status'], cause: unknown): HealthReport =>
    cause === undefined
      ? { component: name, status, checkedAt: state.now, details }
      : { component: name, status, checkedAt: state.now, details, cause };
  if (state.closed) return report('down', new PoolClosedError(name));
  if (!state.primary.healthy) return report('down', state.primary.error);
  if (inRotation === state.replicas.length) return report('up', undefined);
  const firstOut = state.replicas.find((replica) => !replica.healthy && replica.error !== undefined)?.error;
  if (inRotation === 0 && state.replicaFallback === 'error') return report('down', firstOut);
  return report('degraded', firstOut);
}

/**
 * The {@link HealthReport} of a single-server pool (Redis, MongoDB): `down` once closed or while
 * the server is down or unresponsive, with the error behind it; else `up`.
 */
export function serverReport(
  name: string,
  state: {
    closed: boolean;
    healthy: boolean;
    reason?: string;
    error: unknown;
    stats: PoolStats;
    now: number;
  },
): HealthReport {
  const details: Record<string, unknown> = { ...state.stats };
  if (state.reason !== undefined) details.reason = state.reason;
  if (state.closed)
    return {
      component: name,
      status: 'down',
      checkedAt: state.now,
      details,
      cause: new PoolClosedError(name),
    };
  if (state.healthy) return { component: name, status: 'up', checkedAt: state.now, details };
  return state.error === undefined
    ? { component: name, status: 'down', checkedAt: state.now, details }
    : { component: name, status: 'down', checkedAt: state.now, details, cause: state.error };
}
