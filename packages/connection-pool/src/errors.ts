import { NoaError, type NoaErrorOptions } from '@noa/core';
import type { LeakReport } from './pool.js';
import { maskUrlPassword } from './redact.js';

/** Every error class of this package, told apart by `code` (a `switch` on it narrows the error). */
export type AnyConnectionPoolError =
  | AcquireTimeoutError
  | AcquireAbortedError
  | QueueFullError
  | PoolClosedError
  | DrainTimeoutError
  | BackendUnavailableError
  | NotBorrowedError
  | QueryTimeoutError
  | TransactionRetryError
  | TransactionEndedError
  | DriverNotInstalledError
  | AuthenticationFailedError
  | HealthCheckTimeoutError;

/** The codes of this package's errors: a `ConnectionPoolError`'s `code` is one of them, so a `switch` on it can be exhaustive. */
export type ConnectionPoolErrorCode = AnyConnectionPoolError['code'];

/** Base class of every error thrown by @noa/connection-pool; codes start with `NOA_POOL_`. */
export class ConnectionPoolError<
  Code extends ConnectionPoolErrorCode = ConnectionPoolErrorCode,
> extends NoaError<Code> {}

/** No resource became free within `acquireTimeoutMs`. */
export class AcquireTimeoutError extends ConnectionPoolError<'NOA_POOL_ACQUIRE_TIMEOUT'> {
  constructor(pool: string, timeoutMs: number, cause?: unknown) {
    super('NOA_POOL_ACQUIRE_TIMEOUT', `${pool}: no connection free within ${timeoutMs} ms`, {
      cause,
      details: { pool, timeoutMs },
    });
  }
}

/** The caller's `AbortSignal` fired while it waited for a resource. */
export class AcquireAbortedError extends ConnectionPoolError<'NOA_POOL_ACQUIRE_ABORTED'> {
  constructor(pool: string, reason: unknown) {
    super('NOA_POOL_ACQUIRE_ABORTED', `${pool}: acquire aborted`, { cause: reason, details: { pool } });
  }
}

/**
 * `maxWaiting` callers were already queued: this one is refused at once instead of waiting (load
 * shedding). `details.maxWaiting` is the bound.
 */
export class QueueFullError extends ConnectionPoolError<'NOA_POOL_QUEUE_FULL'> {
  constructor(pool: string, maxWaiting: number) {
    super('NOA_POOL_QUEUE_FULL', `${pool}: ${maxWaiting} callers already waiting for a connection`, {
      details: { pool, maxWaiting },
    });
  }
}

/** The pool is draining or closed, so it hands out nothing more. */
export class PoolClosedError extends ConnectionPoolError<'NOA_POOL_CLOSED'> {
  constructor(pool: string, cause?: unknown) {
    super('NOA_POOL_CLOSED', `${pool} is closed`, { cause, details: { pool } });
  }
}

/**
 * `drain()` waited its `timeoutMs` (by default `closeTimeoutMs`) and connections were still lent
 * (never released: leaks). It closed them as `close()` does; `unreleased` lists them (with the
 * stack of their acquire when leak detection is on) and `details.unreleased` counts them.
 */
export class DrainTimeoutError extends ConnectionPoolError<'NOA_POOL_DRAIN_TIMEOUT'> {
  /** The connections still lent when the wait ran out (closed since). */
  readonly unreleased: readonly LeakReport[];

  constructor(pool: string, timeoutMs: number, unreleased: readonly LeakReport[]) {
    const count = unreleased.length;
    super(
      'NOA_POOL_DRAIN_TIMEOUT',
      `${pool}: ${count} connection${count === 1 ? '' : 's'} still lent after drain() waited ${timeoutMs} ms; closed them`,
      { details: { pool, timeoutMs, unreleased: count } },
    );
    this.unreleased = unreleased;
  }
}

/**
 * The backend cannot be reached: connecting failed, or the pool is backing off after failed
 * connects. Thrown at once instead of waiting out the acquire timeout, so callers fail fast.
 */
export class BackendUnavailableError extends ConnectionPoolError<'NOA_POOL_BACKEND_UNAVAILABLE'> {
  constructor(pool: string, options: NoaErrorOptions = {}) {
    super('NOA_POOL_BACKEND_UNAVAILABLE', `${pool}: backend unavailable`, {
      ...options,
      details: { pool, ...options.details },
    });
  }
}

/** `release()` or `destroy()` was given something the pool did not lend (or already got back). */
export class NotBorrowedError extends ConnectionPoolError<'NOA_POOL_NOT_BORROWED'> {
  constructor(pool: string) {
    super('NOA_POOL_NOT_BORROWED', `${pool}: released a resource that is not borrowed from it`, {
      details: { pool },
    });
  }
}

/**
 * A statement ran longer than `queryTimeoutMs` (a frozen or partitioned server, or a runaway
 * query): its connection was closed so the caller is not left hanging.
 */
export class QueryTimeoutError extends ConnectionPoolError<'NOA_POOL_QUERY_TIMEOUT'> {
  constructor(server: string, timeoutMs: number) {
    super('NOA_POOL_QUERY_TIMEOUT', `${server}: query did not answer within ${timeoutMs} ms`, {
      details: { server, timeoutMs },
    });
  }
}

/**
 * A health check (`checkHealth()`, `MongoPool#health()`) got no answer within its `timeoutMs`:
 * the server is frozen, partitioned or overloaded. The check reports `down` with this as its
 * `cause` instead of hanging a readiness probe; the probe itself goes on under the pool's own
 * deadline, and the next check joins it rather than sending another.
 */
export class HealthCheckTimeoutError extends ConnectionPoolError<'NOA_POOL_HEALTH_CHECK_TIMEOUT'> {
  constructor(pool: string, timeoutMs: number) {
    super('NOA_POOL_HEALTH_CHECK_TIMEOUT', `${pool}: health check got no answer within ${timeoutMs} ms`, {
      details: { pool, timeoutMs },
    });
  }
}

/** A transaction kept failing with a retryable code (serialization failure, deadlock) past `maxRetries`. */
export class TransactionRetryError extends ConnectionPoolError<'NOA_POOL_TRANSACTION_RETRIES_EXHAUSTED'> {
  constructor(attempts: number, cause: unknown) {
    super('NOA_POOL_TRANSACTION_RETRIES_EXHAUSTED', `transaction failed after ${attempts} attempts`, {
      cause,
      details: { attempts },
    });
  }
}

/**
 * A `withTransaction` handle (`tx`) was used after its transaction ended (committed, rolled back,
 * or given up for a retry): its connection is back in the pool, maybe in another caller's
 * transaction, so the statement is refused instead of run there.
 */
export class TransactionEndedError extends ConnectionPoolError<'NOA_POOL_TRANSACTION_ENDED'> {
  constructor(pool: string, attempt: number) {
    super('NOA_POOL_TRANSACTION_ENDED', `${pool}: transaction handle used after its transaction ended`, {
      details: { pool, attempt },
    });
  }
}

/**
 * An optional driver package (`pg`, `mysql2`, `ioredis`, `mongodb`) could not be found: the
 * message says what to install. Not an outage: nothing was sent, no failover is tried.
 */
export class DriverNotInstalledError extends ConnectionPoolError<'NOA_POOL_DRIVER_NOT_INSTALLED'> {
  constructor(packageName: string, cause?: unknown) {
    super(
      'NOA_POOL_DRIVER_NOT_INSTALLED',
      `the \`${packageName}\` package is not installed (it is an optional peer dependency of @noa/connection-pool): npm install ${packageName}`,
      { cause, details: { package: packageName } },
    );
  }
}

/**
 * The server refused the credentials (Postgres 28P01/28000, MySQL `ER_ACCESS_DENIED_ERROR`, Redis
 * `WRONGPASS`/`NOAUTH`): a configuration mistake, not an outage. The message carries the server's
 * reason (never the password), the driver's error is the `cause`; the pool backs off and retries
 * as for an outage (a rotated password may come back), but no failover is asked for.
 */
export class AuthenticationFailedError extends ConnectionPoolError<'NOA_POOL_AUTH_FAILED'> {
  constructor(pool: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super('NOA_POOL_AUTH_FAILED', `${pool}: authentication failed (${maskUrlPassword(reason)})`, {
      cause,
      details: { pool },
    });
  }
}

/**
 * An error as text with the reasons under it (`cause` chain, an AggregateError's errors), any
 * URL password masked: what `health().error` shows, so a refused password, a refused connection
 * and a missing driver read differently.
 */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== undefined && current !== null && !seen.has(current) && parts.length < 5) {
    seen.add(current);
    // A cause whose message its error already quotes (AuthenticationFailedError) adds nothing.
    const message = current instanceof Error ? current.message : undefined;
    if (parts.length === 0 || message === undefined || message === '' || !parts.join(' ').includes(message)) {
      parts.push(ownText(current));
    }
    current = (current as { cause?: unknown }).cause;
  }
  return maskUrlPassword(parts.join(': caused by '));
}

function ownText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  let text = error.message === '' && typeof code === 'string' ? code : error.message;
  if (error instanceof AggregateError && error.errors.length > 0) {
    text = `${text ? `${text} ` : ''}(${error.errors.map((each) => ownText(each)).join('; ')})`;
  }
  return `${error.name}: ${text}`;
}
