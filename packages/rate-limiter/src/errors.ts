import { NoaError, type NoaErrorOptions } from '@noa/core';

/** Base class of every error thrown by @noa/rate-limiter; codes start with `NOA_RATE_LIMIT`. */
export class RateLimiterError extends NoaError {}

/** Thrown by `limiter.consume()` when the request is refused (limited, blocked or denied). */
export class RateLimitedError extends RateLimiterError {
  /** Milliseconds after which the same request may succeed. */
  readonly retryAfterMs: number;

  constructor(key: string, retryAfterMs: number, reason: string, options: NoaErrorOptions = {}) {
    super('NOA_RATE_LIMITED', `rate limit exceeded for ${key} (${reason}); retry after ${retryAfterMs} ms`, {
      ...options,
      details: { key, retryAfterMs, reason, ...options.details },
    });
    this.retryAfterMs = retryAfterMs;
  }
}

/** Thrown when the store answers something the limiter cannot read (e.g. a foreign Lua script). */
export class RateLimitStoreError extends RateLimiterError {
  constructor(message: string, options: NoaErrorOptions = {}) {
    super('NOA_RATE_LIMIT_STORE', message, options);
  }
}

/** Thrown (as a rejection of `check`) when a request's cost is not a non-negative integer. */
export class InvalidCostError extends RateLimiterError {
  constructor(cost: unknown) {
    super('NOA_RATE_LIMIT_INVALID_COST', `cost must be a non-negative integer, got ${String(cost)}`, {
      details: { cost },
    });
  }
}

/** Thrown by `limiter.checkSync()` when the store is remote: its answer cannot be synchronous. */
export class SyncCheckUnsupportedError extends RateLimiterError {
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
 * has no `adjust` method (a custom store), or `block` on a limiter without `autoBlock` (checks
 * then do not read blocks).
 */
export class UnsupportedOperationError extends RateLimiterError {
  /** The operation asked for (`peek`, `refund`, `penalize`, `block`, `unblock`). */
  readonly operation: string;

  constructor(operation: string, reason: string) {
    super('NOA_RATE_LIMIT_UNSUPPORTED_OPERATION', `${operation}() is not supported: ${reason}`, {
      details: { operation, reason },
    });
    this.operation = operation;
  }
}

/** Thrown by `limiter.refund/penalize/block` for points or a duration that is not a valid integer. */
export class InvalidAdjustmentError extends RateLimiterError {
  constructor(field: string, value: unknown, expected: string) {
    super('NOA_RATE_LIMIT_INVALID_ADJUSTMENT', `${field} must be ${expected}, got ${String(value)}`, {
      details: { field, value },
    });
  }
}
