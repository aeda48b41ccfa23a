import { NoaError, type NoaErrorOptions } from '@noa/core';
import type { WarmReport } from './warm.js';

/** Every error class of this package, told apart by `code` (a `switch` on it narrows the error). */
export type AnyCacheManagerError =
  | FactoryError
  | FactoryTimeoutError
  | LockTimeoutError
  | BackendUnavailableError
  | WarmAbortedError
  | SerializationError
  | EdgePurgeError
  | HealthCheckTimeoutError;

/** The codes of this package's errors: a `CacheManagerError`'s `code` is one of them, so a `switch` on it can be exhaustive. */
export type CacheManagerErrorCode = AnyCacheManagerError['code'];

/** Base class of every error thrown by @noa/cache-manager; codes start with `NOA_CACHE_`. */
export class CacheManagerError<
  Code extends CacheManagerErrorCode = CacheManagerErrorCode,
> extends NoaError<Code> {}

/**
 * The factory of `getOrSet` threw (or rejected) and no stale value could be served instead; or a
 * `getOrSetMany` factory's result had the wrong shape (`reason` says how).
 */
export class FactoryError extends CacheManagerError<'NOA_CACHE_FACTORY_FAILED'> {
  /**
   * Thrown by `getOrSetMany` only: the call's keys that did resolve (hits, values in grace,
   * values of other loads it joined), by the caller's key; a key the factory left out maps to
   * `undefined`. The keys that failed are absent. Not enumerable, so it stays out of JSON logs.
   */
  declare readonly partial?: ReadonlyMap<string, unknown>;
  readonly #reason: string | undefined;

  constructor(key: string, options: NoaErrorOptions = {}, reason?: string) {
    super('NOA_CACHE_FACTORY_FAILED', `factory for cache key "${key}" failed${reason ? `: ${reason}` : ''}`, {
      ...options,
      details: { key, ...options.details },
    });
    this.#reason = reason;
  }

  /**
   * A copy of this error (same key, message, cause and details) with {@link partial} set: the
   * error a `getOrSetMany` call throws. A copy, since the original may be shared by other
   * callers of the key (a `getOrSet` that joined the batch's load).
   */
  withPartial(partial: ReadonlyMap<string, unknown>): FactoryError {
    const copy = new FactoryError(
      String(this.details.key),
      { cause: this.cause, details: this.details },
      this.#reason,
    );
    Object.defineProperty(copy, 'partial', { value: partial, enumerable: false });
    return copy;
  }
}

/**
 * Why a {@link FactoryTimeoutError} was raised: `timeout`, the caller's own `hardTimeoutMs` (or
 * soft timeout with nothing in grace) passed; `abandoned`, the cache gave the run up (see
 * README "Runs that never settle": past `max(lock.leaseMs, hardTimeoutMs)` with nobody waiting, or
 * after another run of its key replaced it). An abandoned run's `ctx.signal.reason` is such an error.
 */
export type FactoryTimeoutReason = 'timeout' | 'abandoned';

/**
 * The factory did not finish within `hardTimeoutMs` and no stale value could be served; or, with
 * `reason: 'abandoned'`, the cache gave the run up (the reason of its `ctx.signal` too).
 */
export class FactoryTimeoutError extends CacheManagerError<'NOA_CACHE_FACTORY_TIMEOUT'> {
  /** `timeout`: the caller's own bound passed; `abandoned`: the cache gave the run up. */
  readonly reason: FactoryTimeoutReason;

  constructor(key: string, timeoutMs: number, reason: FactoryTimeoutReason = 'timeout') {
    super(
      'NOA_CACHE_FACTORY_TIMEOUT',
      reason === 'abandoned'
        ? `factory for cache key "${key}" was abandoned after ${timeoutMs} ms (it outlived its lease with nobody waiting, or another run replaced it)`
        : `factory for cache key "${key}" did not finish within ${timeoutMs} ms`,
      {
        // Only an abandoned run's names its reason: a timeout's details stay as they were.
        details: reason === 'abandoned' ? { key, timeoutMs, reason } : { key, timeoutMs },
      },
    );
    this.reason = reason;
  }
}

/**
 * Another instance holds the key's lease (it is computing the value) and did not publish a
 * value within `lockTimeoutMs`, and no stale value could be served.
 */
export class LockTimeoutError extends CacheManagerError<'NOA_CACHE_LOCK_TIMEOUT'> {
  constructor(key: string, timeoutMs: number) {
    super('NOA_CACHE_LOCK_TIMEOUT', `waited ${timeoutMs} ms for another instance to compute "${key}"`, {
      details: { key, timeoutMs },
    });
  }
}

/**
 * Redis failed, was too slow or its circuit breaker is open. Thrown only when the cache was
 * built with `onBackendError: 'throw'`; by default the cache degrades to L1 silently.
 */
export class BackendUnavailableError extends CacheManagerError<'NOA_CACHE_BACKEND_UNAVAILABLE'> {
  constructor(operation: string, options: NoaErrorOptions = {}) {
    super('NOA_CACHE_BACKEND_UNAVAILABLE', `cache backend unavailable during ${operation}`, {
      ...options,
      details: { operation, ...options.details },
    });
  }
}

/**
 * `warm` stopped before every key was loaded: its `signal` aborted (the signal's reason is the
 * `cause`) or the cache was closed (a core `ClosedError` is the `cause`). `report` counts the
 * keys settled until then; loads still in flight were abandoned, not counted (they finish in
 * the background and their values are cached).
 */
export class WarmAbortedError extends CacheManagerError<'NOA_CACHE_WARM_ABORTED'> {
  /** The keys settled before the abort (a snapshot: later settlements are not added). */
  readonly report: WarmReport;

  constructor(report: WarmReport, options: NoaErrorOptions = {}) {
    super('NOA_CACHE_WARM_ABORTED', `warm aborted after ${report.done} of ${report.total} keys`, {
      ...options,
      details: { ...report, ...options.details },
    });
    this.report = report;
  }
}

/** A value could not be encoded for, or decoded from, L2. */
export class SerializationError extends CacheManagerError<'NOA_CACHE_SERIALIZATION'> {
  constructor(direction: 'encode' | 'decode', options: NoaErrorOptions = {}) {
    super('NOA_CACHE_SERIALIZATION', `could not ${direction} a cache value`, {
      ...options,
      details: { direction, ...options.details },
    });
  }
}

/**
 * `deleteByTag` removed the tagged entries from both tiers (and told the other instances), but
 * the edge purger failed: the CDN may still serve its copies, so the caller can retry the
 * purge. The purger's error is the `cause`.
 */
export class EdgePurgeError extends CacheManagerError<'NOA_CACHE_EDGE_PURGE_FAILED'> {
  constructor(tags: readonly string[], options: NoaErrorOptions = {}) {
    super(
      'NOA_CACHE_EDGE_PURGE_FAILED',
      `cache entries were deleted but the edge purge of tags ${tags.join(', ')} failed`,
      {
        ...options,
        details: { tags: [...tags], ...options.details },
      },
    );
  }
}

/**
 * `checkHealth()` got no answer from Redis within its `timeoutMs`: Redis is frozen, partitioned
 * or overloaded. The check reports `degraded` (or `down` with `onBackendError: 'throw'`) with
 * this as its `cause` instead of hanging a readiness probe; the PING goes on under its own
 * deadline (`operationTimeoutMs`) and the next check joins it rather than sending another.
 */
export class HealthCheckTimeoutError extends CacheManagerError<'NOA_CACHE_HEALTH_CHECK_TIMEOUT'> {
  constructor(timeoutMs: number) {
    super(
      'NOA_CACHE_HEALTH_CHECK_TIMEOUT',
      `cache: Redis health check got no answer within ${timeoutMs} ms`,
      {
        details: { timeoutMs },
      },
    );
  }
}
