import { z } from 'zod';
import { maxTimerMs, withDeadline } from './deadline.js';
import { parseOptions } from './errors.js';
import type { HealthReport, HealthStatus } from './health.js';

const timerBound = `must be at most ${maxTimerMs} (the longest timer Node can set)`;

/**
 * Options of an active health check (`checkHealth()` of the pools, the cache, the rate limiter):
 * strict, so a misspelt key is refused.
 */
export const healthProbeOptionsSchema = z
  .object({
    /**
     * Longest the check waits for the backend's answer; then it reports the component not
     * answering, with the package's health-check timeout error as `cause`. Default 500 ms: below
     * the 800 ms of `runHealthChecks`, so a hung backend reads as the component's own timeout,
     * not as an anonymous one of the runner.
     */
    timeoutMs: z.number().int().positive().max(maxTimerMs, timerBound).default(500),
    /**
     * An answer (up or down) at most this old is returned again without asking the backend:
     * readiness endpoints are polled often, by several callers. Default 1000 ms; 0 always asks
     * (concurrent calls still share one probe).
     */
    maxAgeMs: z.number().int().nonnegative().max(maxTimerMs, timerBound).default(1_000),
  })
  .strict();

/** Input type of {@link healthProbeOptionsSchema}. */
export type HealthProbeOptions = z.input<typeof healthProbeOptionsSchema>;

const defaultHealthProbeOptions = healthProbeOptionsSchema.parse({});

/** What a {@link HealthProbeGate} runs and answers with. */
export interface HealthProbeGateOptions<Report> {
  /**
   * Asks the backend (a PING) and builds the report. It should end under a deadline of its own
   * (a frozen server must not keep it pending for ever: every later check would join it) and
   * should not reject; a rejection reaches the callers of `check()`.
   */
  probe: () => Promise<Report>;
  /** The report of a caller whose `timeoutMs` passed before the probe answered. */
  timedOut: (timeoutMs: number) => Report;
  /** The report of a closed component (asks nothing, never reused), else undefined. */
  closed: () => Report | undefined;
  /** The name a `ConfigError` for bad options gives (default `checkHealth`). */
  operation?: string;
}

/**
 * One component's active health check, the same policy for every package: concurrent calls
 * share one probe (single flight), an answer younger than `maxAgeMs` is reused, and a caller
 * waits at most its `timeoutMs`, after which it gets `timedOut(timeoutMs)`; the probe goes on
 * under its own deadline and the next caller joins it rather than sending another. The answer
 * reused is the probe's, kept when it comes (even after every caller stopped waiting), never a
 * caller's timeout: that one says only how long that caller would wait.
 */
export class HealthProbeGate<Report> {
  readonly #options: HealthProbeGateOptions<Report>;
  #inFlight: Promise<Report> | undefined;
  #last: { report: Report; at: number } | undefined;

  constructor(options: HealthProbeGateOptions<Report>) {
    this.#options = options;
  }

  /** Validates `options` (a `ConfigError` naming the field), then answers as described above. */
  async check(options: HealthProbeOptions | undefined): Promise<Report> {
    const { timeoutMs, maxAgeMs } =
      options === undefined
        ? defaultHealthProbeOptions
        : parseOptions(this.#options.operation ?? 'checkHealth', healthProbeOptionsSchema, options);
    const closed = this.#options.closed();
    if (closed !== undefined) return closed;
    const last = this.#last;
    if (last !== undefined && Date.now() - last.at < maxAgeMs) return last.report;
    this.#inFlight ??= this.#probe();
    let timedOut = false;
    try {
      return await withDeadline(this.#inFlight, timeoutMs, 'health check', () => {
        timedOut = true;
      });
    } catch (error) {
      // Only our deadline: a probe's own failure is its report's business, not a timeout.
      if (!timedOut) throw error;
      // Not kept for reuse: it is this caller's `timeoutMs`, not the backend's answer. A later
      // caller (whose `timeoutMs` may be longer) joins the probe, and its answer, even one that
      // comes after every caller stopped waiting, is the one reused.
      return this.#options.timedOut(timeoutMs);
    }
  }

  /** Runs the probe, keeping its answer (whoever still waits for it) for `maxAgeMs` reuse. */
  #probe(): Promise<Report> {
    return this.#options
      .probe()
      .then((report) => {
        this.#last = { report, at: Date.now() };
        return report;
      })
      .finally(() => {
        this.#inFlight = undefined;
      });
  }
}

/** How an active probe of a component's backend went (a PING). */
export type HealthProbeOutcome = { answered: true } | { answered: false; timedOut: boolean; error: unknown };

/**
 * The outcome of a check whose caller stopped waiting at its `timeoutMs` (what a
 * {@link HealthProbeGate}'s `timedOut` reports): not answered, by timeout, `error` being the
 * package's own health-check timeout error (its stable code), for {@link probedHealth}.
 */
export function probeTimedOut(error: unknown): HealthProbeOutcome {
  return { answered: false, timedOut: true, error };
}

/**
 * Runs `ping` under `deadlineMs` (the probe's own deadline, not a caller's `timeoutMs`) and says
 * how it went; never rejects.
 */
export async function probeBackend(
  ping: () => Promise<unknown>,
  deadlineMs: number,
  operation: string,
): Promise<HealthProbeOutcome> {
  let timedOut = false;
  try {
    await withDeadline(ping(), deadlineMs, operation, () => {
      timedOut = true;
    });
    return { answered: true };
  } catch (error) {
    // The deadline's TimeoutError is a timeout (`details.probe: 'timeout'`), not a failed PING.
    return { answered: false, timedOut, error };
  }
}

/**
 * A component's passive report (built from traffic) corrected by an active probe of its backend:
 * a probe that failed or was not answered in time makes the backend not answering, whatever the
 * breaker says (`failStatus`: what the component's fallback makes of that, with the probe's error
 * as `cause`); one that was answered makes the component `up` while its breaker is closed (an
 * earlier failed call no longer counts), and keeps the passive verdict while it is not: traffic
 * still bypasses the backend until the breaker closes. `details.probe`: `answered`, `failed` or
 * `timeout`, and `notAnswering` merged into `details` when the probe was not answered.
 */
export function probedHealth(
  passive: HealthReport,
  probe: HealthProbeOutcome,
  backend: {
    failStatus: Exclude<HealthStatus, 'up'>;
    breakerClosed: boolean;
    notAnswering?: Record<string, unknown>;
  },
): HealthReport {
  const details: Record<string, unknown> = {
    ...passive.details,
    probe: probe.answered ? 'answered' : probe.timedOut ? 'timeout' : 'failed',
  };
  const { component, checkedAt } = passive;
  if (!probe.answered)
    return {
      component,
      status: backend.failStatus,
      checkedAt,
      details: { ...details, ...backend.notAnswering },
      cause: probe.error,
    };
  if (backend.breakerClosed) return { component, status: 'up', checkedAt, details };
  return { ...passive, details };
}
