import {
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleAll,
  type IBreaker,
  isBrokenCircuitError,
  SamplingBreaker,
} from 'cockatiel';
import { z } from 'zod';
import { CircuitOpenError, parseOptions } from './errors.js';

/** Options of {@link createCircuitBreaker}; every package exposes these as its `breaker` option. */
export const breakerOptionsSchema = z
  .object({
    /** Share of failed calls in the sampling window that opens the breaker (above 0, below 1). */
    failureRatio: z
      .number()
      .gt(0)
      .lt(1, 'must be below 1 (a ratio of 1 could never be exceeded)')
      .default(0.5),
    /** Length of the sliding window over which the failure ratio is measured. */
    samplingDurationMs: z.number().int().positive().default(5_000),
    /** Calls per second below which the ratio is not trusted and the breaker stays closed. */
    minimumRps: z.number().nonnegative().default(5),
    /** Alternatively, open after this many consecutive failures (overrides the ratio). */
    consecutiveFailures: z.number().int().positive().optional(),
    /** How long the breaker stays open before it lets one probe call through (half-open). */
    halfOpenAfterMs: z.number().int().positive().default(1_000),
  })
  .strict();

/** Input type of the breaker options (all fields optional). */
export type BreakerOptions = z.input<typeof breakerOptionsSchema>;

/** The breaker's state, as seen by metrics and logs. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A circuit breaker around calls to one backend (Redis, a broker, a database). */
export interface CircuitBreaker {
  /**
   * The current state; cheap, for hot paths that want to skip the backend when open. Once an
   * open breaker has waited `halfOpenAfterMs`, this reports `'half-open'` (a probe call would be
   * let through) even before any call arrives, so callers that skip calls while `'open'` still
   * send the probe that closes it again.
   */
  readonly state: BreakerState;
  /**
   * Runs `fn` through the breaker. Rejects with {@link CircuitOpenError} without calling `fn`
   * while open; failures of `fn` count towards opening.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Subscribes to state changes; returns a function that unsubscribes. */
  onStateChange(listener: (state: BreakerState) => void): () => void;
}

function toBreakerState(state: CircuitState): BreakerState {
  if (state === CircuitState.Closed) return 'closed';
  if (state === CircuitState.HalfOpen) return 'half-open';
  return 'open';
}

/**
 * Builds a circuit breaker on cockatiel (error-ratio sampling or consecutive failures, with
 * half-open probes). `operation` names the backend in errors, e.g. `'redis'`.
 */
export function createCircuitBreaker(operation: string, options: BreakerOptions = {}): CircuitBreaker {
  const parsed = parseOptions('breaker', breakerOptionsSchema, options);
  const breaker: IBreaker =
    parsed.consecutiveFailures !== undefined
      ? new ConsecutiveBreaker(parsed.consecutiveFailures)
      : new SamplingBreaker({
          threshold: parsed.failureRatio,
          duration: parsed.samplingDurationMs,
          minimumRps: parsed.minimumRps,
        });
  const policy: CircuitBreakerPolicy = circuitBreaker(handleAll, {
    halfOpenAfter: parsed.halfOpenAfterMs,
    breaker,
  });
  let openedAt = 0;
  policy.onBreak(() => {
    openedAt = Date.now();
  });
  return {
    get state() {
      const state = toBreakerState(policy.state);
      if (state === 'open' && Date.now() - openedAt >= parsed.halfOpenAfterMs) return 'half-open';
      return state;
    },
    async execute<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
      try {
        return await policy.execute(({ signal }) => fn(signal));
      } catch (error) {
        if (isBrokenCircuitError(error)) {
          throw new CircuitOpenError(operation, { cause: error });
        }
        throw error;
      }
    },
    onStateChange(listener) {
      const subscription = policy.onStateChange((state) => listener(toBreakerState(state)));
      return () => subscription.dispose();
    },
  };
}
