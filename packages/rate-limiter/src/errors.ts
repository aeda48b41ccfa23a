import { NoaError, type NoaErrorOptions } from '@noa/core';
import { type RateLimitResult, withNeverRetryJSON } from './result.js';

/** Every error class of this package, told apart by `code` (a `switch` on it narrows the error). */
export type AnyRateLimiterError =
  | RateLimitedError
  | CostExceedsCapacityError
  | RateLimitStoreError
  | InvalidCostError
  | InvalidCheckInputError
  | SyncCheckUnsupportedError
  | UnsupportedOperationError
  | InvalidAdjustmentError
  | AcquireError
  | HealthCheckTimeoutError;

/** The codes of this package's errors: a `RateLimiterError`'s `code` is one of them, so a `switch` on it can be exhaustive. */
export type RateLimiterErrorCode = AnyRateLimiterError['code'];

/** Base class of every error thrown by @noa/rate-limiter; codes start with `NOA_RATE_LIMIT`. */
export class RateLimiterError<
  Code extends RateLimiterErrorCode = RateLimiterErrorCode,
> extends NoaError<Code> {}

/**
 * Thrown by `limiter.consume()` when the request is refused (limited, blocked or denied), with the
 * refusal's whole {@link RateLimitResult} in `result` (as rate-limiter-flexible's `RateLimiterRes`):
 * `rateLimitHeaders(error.result)` gives the headers a middleware would send.
 */
export class RateLimitedError extends RateLimiterError<'NOA_RATE_LIMITED'> {
  /** Milliseconds after which the same request may succeed. */
  readonly retryAfterMs: number;
  /**
   * The check's result that refused the request (its limits, `remaining`, `resetMs`, `outcome`,
   * `blockedMs`…); set by `consume()`, undefined only for an error constructed without one. Not
   * copied into `details`, which stays small for logs.
   */
  readonly result: RateLimitResult | undefined;

  constructor(
    key: string,
    retryAfterMs: number,
    reason: string,
    options: NoaErrorOptions & { result?: RateLimitResult } = {},
  ) {
    const { result, ...errorOptions } = options;
    super('NOA_RATE_LIMITED', `rate limit exceeded for ${key} (${reason}); retry after ${retryAfterMs} ms`, {
      ...errorOptions,
      details: { key, retryAfterMs, reason, ...errorOptions.details },
    });
    this.retryAfterMs = retryAfterMs;
    this.result = result;
  }
}

/**
 * Thrown by `limiter.consume()` when the request's cost is above what one of its limits can ever
 * admit (`outcome: 'exceeds-capacity'`): no wait helps, so it is not a {@link RateLimitedError},
 * whose callers retry after `retryAfterMs`. Reduce the cost (split the batch) or give the caller a
 * role with a larger capacity.
 */
export class CostExceedsCapacityError extends RateLimiterError<'NOA_RATE_LIMIT_COST_EXCEEDS_CAPACITY'> {
  /** The caller's key. */
  readonly key: string;
  /** The request's cost. */
  readonly cost: number;
  /** The names of the limits whose capacity the cost is above. */
  readonly limits: readonly string[];

  constructor(key: string, cost: number, limits: readonly string[], options: NoaErrorOptions = {}) {
    super(
      'NOA_RATE_LIMIT_COST_EXCEEDS_CAPACITY',
      `a request of cost ${cost} for ${key} can never be admitted: it is above the capacity of ${limits.map((name) => `"${name}"`).join(', ')}`,
      { ...options, details: { key, cost, limits, ...options.details } },
    );
    this.key = key;
    this.cost = cost;
    this.limits = limits;
  }
}

/** Thrown when the store answers something the limiter cannot read (e.g. a foreign Lua script). */
export class RateLimitStoreError extends RateLimiterError<'NOA_RATE_LIMIT_STORE'> {
  constructor(message: string, options: NoaErrorOptions = {}) {
    super('NOA_RATE_LIMIT_STORE', message, options);
  }
}

/**
 * Thrown (as a rejection of `check`) when a request's cost is not a non-negative integer: a
 * check's `cost`, or what the middleware's `cost` function returned (-1, 1.5, NaN, Infinity, a
 * string), which fails the request as a bad `keyBy` value does.
 */
export class InvalidCostError extends RateLimiterError<'NOA_RATE_LIMIT_INVALID_COST'> {
  /** Always `'cost'`: the field at fault, as {@link InvalidCheckInputError.field} names its own. */
  readonly field = 'cost';

  constructor(cost: unknown) {
    super('NOA_RATE_LIMIT_INVALID_COST', `cost must be a non-negative integer, got ${String(cost)}`, {
      details: { cost, field: 'cost' },
    });
  }
}

/**
 * Thrown (as a rejection, except by `checkSync`) by the limiter's methods for an input that is not
 * a check: a key that is missing, not a string or empty (kept, every caller without a key would
 * share one quota), an `ip` or `role` that is not a string, or a field the input does not have (a
 * misspelt `cots` would otherwise be charged the default cost). `field` names the culprit
 * (`'input'` when the input is neither a string nor an object).
 */
export class InvalidCheckInputError extends RateLimiterError<'NOA_RATE_LIMIT_INVALID_INPUT'> {
  /** The field at fault: `key`, `ip`, `role`, an unknown field's name, or `input`. */
  readonly field: string;

  constructor(method: string, field: string, problem: string) {
    super('NOA_RATE_LIMIT_INVALID_INPUT', `${method}(): ${problem}`, { details: { method, field } });
    this.field = field;
  }
}

/** Thrown by `limiter.checkSync()` when the store is remote: its answer cannot be synchronous. */
export class SyncCheckUnsupportedError extends RateLimiterError<'NOA_RATE_LIMIT_SYNC_UNSUPPORTED'> {
  constructor(storeKind: string) {
    super(
      'NOA_RATE_LIMIT_SYNC_UNSUPPORTED',
      `checkSync() needs a memory store; the ${storeKind} store answers asynchronously: use check()`,
      { details: { store: storeKind } },
    );
  }
}

/**
 * Thrown by `limiter.peek/refund/penalize/block/unblock` when the operation cannot run: the store
 * has no `adjust` method (a custom store).
 */
export class UnsupportedOperationError extends RateLimiterError<'NOA_RATE_LIMIT_UNSUPPORTED_OPERATION'> {
  /** The operation asked for (`peek`, `refund`, `penalize`, `block`, `unblock`, `resetAll`). */
  readonly operation: string;

  constructor(operation: string, reason: string) {
    super('NOA_RATE_LIMIT_UNSUPPORTED_OPERATION', `${operation}() is not supported: ${reason}`, {
      details: { operation, reason },
    });
    this.operation = operation;
  }
}

/** Thrown by `limiter.refund/penalize/block` for points or a duration that is not a valid integer. */
export class InvalidAdjustmentError extends RateLimiterError<'NOA_RATE_LIMIT_INVALID_ADJUSTMENT'> {
  /** The argument at fault, `points` or `durationMs`, as {@link InvalidCheckInputError.field} names its own. */
  readonly field: string;

  constructor(field: string, value: unknown, expected: string) {
    super('NOA_RATE_LIMIT_INVALID_ADJUSTMENT', `${field} must be ${expected}, got ${String(value)}`, {
      details: { field, value },
    });
    this.field = field;
  }
}

/**
 * Why `limiter.acquire()` gave up: its `timeoutMs` passed (`timeout`), its `signal` aborted
 * (`aborted`), the key already had `maxQueue` waiters (`queue-full`), the IP is deny-listed
 * (`denied`), the cost is above what a limit can ever admit (`exceeds-capacity`), or the key is
 * blocked (`blocked`) or limited (`limited`) for longer than the time left, so waiting could not
 * end in an admission.
 */
export type AcquireFailure =
  | 'timeout'
  | 'aborted'
  | 'queue-full'
  | 'denied'
  | 'blocked'
  | 'limited'
  | 'exceeds-capacity'
  | 'unavailable';

/** Thrown (as a rejection) by `limiter.acquire()` when the request was not admitted in time. */
export class AcquireError extends RateLimiterError<'NOA_RATE_LIMIT_ACQUIRE'> {
  /** The caller's key. */
  readonly key: string;
  /** Why the wait ended without an admission. */
  readonly reason: AcquireFailure;
  /** Milliseconds the caller waited before this rejection (0 when it was refused at once). */
  readonly waitedMs: number;
  /**
   * From the last refusal, when there was one: milliseconds until the key may admit again
   * (`Infinity` for `exceeds-capacity` and `denied`: never; then `JSON.stringify` and `details` leave it out,
   * as for a result), counted from that refusal; for a caller refused at once (its timeout ends
   * before the head's next check, or the queue is full), from now to that check. It is the
   * queue's head's refusal, for the head's
   * cost: for a caller that waited behind the head it is a lower bound, since the callers ahead of
   * it take their points first (and others' checks compete); retrying sooner is pointless, later
   * may still be refused.
   */
  readonly retryAfterMs: number;

  constructor(
    key: string,
    reason: AcquireFailure,
    waitedMs: number,
    retryAfterMs: number,
    options: NoaErrorOptions = {},
  ) {
    super(
      'NOA_RATE_LIMIT_ACQUIRE',
      `acquire for ${key} gave up after ${waitedMs} ms: ${acquireReasons[reason]}`,
      {
        ...options,
        // Never (Infinity) is left out: JSON, and so every log line, would write null ("retry now").
        details: {
          key,
          reason,
          waitedMs,
          ...(Number.isFinite(retryAfterMs) ? { retryAfterMs } : {}),
          ...options.details,
        },
      },
    );
    this.key = key;
    this.reason = reason;
    this.waitedMs = waitedMs;
    this.retryAfterMs = retryAfterMs;
    withNeverRetryJSON(this);
  }
}

const acquireReasons: Record<AcquireFailure, string> = {
  timeout: 'timed out',
  aborted: 'aborted by its signal',
  'queue-full': 'too many callers already waiting for this key',
  denied: 'the IP is deny-listed',
  blocked: 'the key is blocked for longer than the time left',
  limited: 'the key cannot admit the request within the time left',
  'exceeds-capacity': 'the cost is above what a limit can ever admit',
  unavailable:
    'the store is unreachable and its fail mode refuses until it answers again, after the time left',
};

/**
 * `checkHealth()` got no answer from the store within its `timeoutMs`: Redis is frozen,
 * partitioned or overloaded. The check reports the fail mode's verdict (`degraded`, or `down`
 * with `failMode: 'closed'`) with this as its `cause` instead of hanging a readiness probe; the
 * PING goes on under its own deadline and the next check joins it rather than sending another.
 */
export class HealthCheckTimeoutError extends RateLimiterError<'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT'> {
  constructor(timeoutMs: number) {
    super(
      'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT',
      `rate-limiter: store health check got no answer within ${timeoutMs} ms`,
      { details: { timeoutMs } },
    );
  }
}
