import {
  BrokenCircuitError,
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

/**
 * The default run of failed calls that opens the breaker. A call is a whole batch (a limiter's
 * tick of checks, a cache's MGET), so at 2,000 checks/s there are about 1,000 calls a second: a
 * stalled Redis fails ten calls about 10 ms after the first deadline passed, so it is caught
 * within `deadline + 10 ms` (35 ms with the limiter's 25 ms). A call fails only when it outlives
 * its deadline, so a hiccup shorter than the deadline (a `fork` for a snapshot of a few GB, on
 * hardware where that takes ~10 ms per GB) fails none, and one up to `deadline + 10 ms` at that
 * rate (longer at lower rates: calls come less often) stays below ten. Envoy's outlier detection
 * ejects after 5 consecutive 5xx, counting single requests; ten batches is the same order for
 * calls that carry several checks each, and tolerates twice the jitter.
 */
export const defaultConsecutiveFailures = 10;

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
    /**
     * Unset (the default), the breaker opens on the ratio OR a run of
     * {@link defaultConsecutiveFailures} failed calls in a row. Set, it opens after this many
     * failed calls in a row only, and the ratio options are not used (as in earlier releases).
     */
    consecutiveFailures: z.number().int().positive().optional(),
    /** How long the breaker stays open before it tries the backend again (a probe, half-open). */
    halfOpenAfterMs: z.number().int().positive().default(1_000),
  })
  .strict();

/**
 * A cockatiel breaker that opens on EITHER of two signals: the failure ratio over a sliding
 * window (cockatiel's `SamplingBreaker`: a backend failing often but not always), or a run of
 * consecutive failures (`ConsecutiveBreaker`: a backend that stopped answering, which the ratio
 * notices only once the window's earlier successes are outweighed). Both see every call, and a
 * success ends the run (as resilience4j's and Polly's breakers count, and opossum's ratio).
 */
export class RatioOrRunBreaker implements IBreaker {
  readonly #ratio: SamplingBreaker;
  readonly #run: ConsecutiveBreaker;

  constructor(options: {
    failureRatio: number;
    samplingDurationMs: number;
    minimumRps: number;
    consecutiveFailures: number;
  }) {
    this.#ratio = new SamplingBreaker({
      threshold: options.failureRatio,
      duration: options.samplingDurationMs,
      minimumRps: options.minimumRps,
    });
    this.#run = new ConsecutiveBreaker(options.consecutiveFailures);
  }

  /** Both breakers' state (cockatiel's serialization hook). */
  get state(): unknown {
    return { ratio: this.#ratio.state, run: this.#run.state };
  }

  set state(value: unknown) {
    const { ratio, run } = value as { ratio: unknown; run: number };
    this.#ratio.state = ratio;
    this.#run.state = run;
  }

  /** The failed calls in a row so far (0 after a success). */
  get run(): number {
    return this.#run.state;
  }

  success(state: CircuitState): void {
    this.#ratio.success(state);
    this.#run.success();
  }

  failure(state: CircuitState): boolean {
    // Both count every failure, so neither is behind when the other trips.
    const byRatio = this.#ratio.failure(state);
    const byRun = this.#run.failure();
    return byRatio || byRun;
  }
}

/**
 * A cheap call that tells whether the backend answers again (a PING under a deadline), made by
 * the breaker itself instead of a user call: it rejects when the backend does not answer. On a
 * backend whose parts fail apart (a Redis Cluster, where ioredis sends a keyless PING to one
 * master at random), it must ask every part, as the failures it stands for do (see the README).
 */
export type BreakerProbe = (signal: AbortSignal) => Promise<unknown>;

/** What a package (not its user) gives {@link createCircuitBreaker} besides the options. */
export interface BreakerHooks {
  /**
   * When given: once open for `halfOpenAfterMs`, the breaker runs this probe (one at a time) in
   * place of a user call, and user calls keep being refused with {@link CircuitOpenError} (at
   * once) until a probe succeeds, which closes it; a failed probe opens it again for
   * `halfOpenAfterMs`. Without it, a user call is the trial (cockatiel's half-open), and calls
   * arriving while it runs wait for its outcome.
   */
  probe?: BreakerProbe | undefined;
}

/** Input type of the breaker options (all fields optional). */
export type BreakerOptions = z.input<typeof breakerOptionsSchema>;

/** The breaker's state, as seen by metrics and logs. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A circuit breaker around calls to one backend (Redis, a broker, a database). */
export interface CircuitBreaker {
  /**
   * The current state; cheap, for hot paths that want to skip the backend when open. Once an
   * open breaker has waited `halfOpenAfterMs`, this reports `'half-open'` (the next call would be
   * the trial, or, with a probe, set it off) even before any call arrives, so callers that skip
   * calls while `'open'` still make the call that closes it again. With a probe it stays
   * `'half-open'` while the probe is out.
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
 * Builds a circuit breaker on cockatiel: by default it opens on the failure ratio or on a run of
 * consecutive failures ({@link RatioOrRunBreaker}); with `consecutiveFailures` set, on that run
 * only. It tries the backend again after
 * `halfOpenAfterMs`, by `hooks.probe` when given (see {@link BreakerHooks}), by one user call
 * otherwise. `operation` names the backend in errors, e.g. `'redis'`.
 */
export function createCircuitBreaker(
  operation: string,
  options: BreakerOptions = {},
  hooks: BreakerHooks = {},
): CircuitBreaker {
  const parsed = parseOptions('breaker', breakerOptionsSchema, options);
  const policy: CircuitBreakerPolicy = circuitBreaker(handleAll, {
    halfOpenAfter: parsed.halfOpenAfterMs,
    breaker:
      parsed.consecutiveFailures === undefined
        ? new RatioOrRunBreaker({ ...parsed, consecutiveFailures: defaultConsecutiveFailures })
        : new ConsecutiveBreaker(parsed.consecutiveFailures),
  });
  let openedAt = 0;
  policy.onBreak(() => {
    openedAt = Date.now();
  });
  const probe = hooks.probe;
  let probing = false;
  const due = () => Date.now() - openedAt >= parsed.halfOpenAfterMs;
  /**
   * The probe as cockatiel's half-open trial: it moves the policy to half-open, and its outcome
   * closes or reopens it, with the same state changes (and listeners) as a user call's would.
   */
  const startProbe = (): void => {
    probing = true;
    policy
      .execute(async ({ signal }) => probe!(signal))
      .catch(() => {})
      .finally(() => {
        probing = false;
      });
  };
  return {
    get state() {
      const state = toBreakerState(policy.state);
      if (state === 'open' && due()) return 'half-open';
      return state;
    },
    async execute<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
      if (probe !== undefined && policy.state !== CircuitState.Closed) {
        // Open, or half-open with the probe out: no user call is the trial, nor waits for it.
        if (!probing && policy.state === CircuitState.Open && due()) startProbe();
        throw new CircuitOpenError(operation, { cause: new BrokenCircuitError() });
      }
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
