import { type HealthReport, maxTimerMs, parseOptions, withDeadline } from '@noa/core';
import { z } from 'zod';
import { HealthCheckTimeoutError, PoolClosedError } from './errors.js';
import type { PoolStats } from './pool.js';
import { timerBoundMessage } from './pool-options.js';

/**
 * Options of every pool's active health check (`checkHealth()` of the SQL pools and `RedisPool`,
 * `MongoPool#health()`): strict, so a misspelt key is refused.
 */
export const checkHealthOptionsSchema = z
  .object({
    /**
     * Longest the check waits for the server's answer; then it reports `down` with a
     * `HealthCheckTimeoutError` (`NOA_POOL_HEALTH_CHECK_TIMEOUT`). Default 500 ms: below the
     * 800 ms of @noa/core's `runHealthChecks`, so a hung server reads as this pool's timeout,
     * not as an anonymous one of the probe.
     */
    timeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(500),
    /**
     * An answer (up or down) at most this old is returned again without asking the server:
     * readiness endpoints are polled often, by several callers. Default 1000 ms; 0 always asks
     * (concurrent calls still share one probe).
     */
    maxAgeMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).default(1_000),
  })
  .strict();

/** Options of `checkHealth()` / `MongoPool#health()`. */
export type CheckHealthOptions = z.input<typeof checkHealthOptionsSchema>;

const defaultCheckHealthOptions = checkHealthOptionsSchema.parse({});

/**
 * One pool's active health check: concurrent calls share one probe (single flight), an answer
 * younger than `maxAgeMs` is reused, and a caller waits at most its `timeoutMs`, after which it
 * gets `timedOut(error)`; the probe goes on under the pool's own deadline and the next caller
 * joins it. The same policy for every pool kind.
 */
export class HealthCheckGate<Report> {
  readonly #pool: string;
  readonly #probe: () => Promise<Report>;
  readonly #timedOut: (error: HealthCheckTimeoutError) => Report;
  readonly #closed: () => Report | undefined;
  #inFlight: Promise<Report> | undefined;
  #last: { report: Report; at: number } | undefined;

  constructor(
    pool: string,
    probe: () => Promise<Report>,
    timedOut: (error: HealthCheckTimeoutError) => Report,
    /** The report of a closed pool (asks nothing, never reused), else undefined. */
    closed: () => Report | undefined,
  ) {
    this.#pool = pool;
    this.#probe = probe;
    this.#timedOut = timedOut;
    this.#closed = closed;
  }

  /** Validates `options` (a `ConfigError` naming the field), then answers as described above. */
  async check(options: CheckHealthOptions | undefined): Promise<Report> {
    const { timeoutMs, maxAgeMs } =
      options === undefined
        ? defaultCheckHealthOptions
        : parseOptions('checkHealth', checkHealthOptionsSchema, options);
    const closed = this.#closed();
    if (closed !== undefined) return closed;
    const last = this.#last;
    if (last !== undefined && Date.now() - last.at < maxAgeMs) return last.report;
    this.#inFlight ??= this.#probe().finally(() => {
      this.#inFlight = undefined;
    });
    let report: Report;
    let timedOut = false;
    try {
      report = await withDeadline(this.#inFlight, timeoutMs, 'health check', () => {
        timedOut = true;
      });
    } catch (error) {
      // Only our deadline: a probe's own failure is its report's business, not a timeout.
      if (!timedOut) throw error;
      report = this.#timedOut(new HealthCheckTimeoutError(this.#pool, timeoutMs));
    }
    this.#last = { report, at: Date.now() };
    return report;
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
