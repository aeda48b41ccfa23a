import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AcquireAbortedError,
  AcquireTimeoutError,
  type AnyConnectionPoolError,
  AuthenticationFailedError,
  BackendUnavailableError,
  ConnectionPoolError,
  type ConnectionPoolErrorCode,
  DrainTimeoutError,
  DriverNotInstalledError,
  HealthCheckTimeoutError,
  NoaError,
  NotBorrowedError,
  PoolClosedError,
  QueryTimeoutError,
  QueueFullError,
  TransactionEndedError,
  TransactionRetryError,
} from '../src/index.js';

// Each error class's `code` is a literal type and `ConnectionPoolErrorCode` is their union, so
// that a `switch (error.code)` narrows the error and can be exhaustive (checked by `tsc`, which
// failed on `code: string`); at run time nothing changed.

const errors = [
  new AcquireTimeoutError('p', 10),
  new AcquireAbortedError('p', 'stop'),
  new PoolClosedError('p'),
  new DrainTimeoutError('p', 10, []),
  new BackendUnavailableError('p'),
  new NotBorrowedError('p'),
  new QueryTimeoutError('s', 10),
  new TransactionRetryError(3, new Error('deadlock')),
  new DriverNotInstalledError('pg'),
  new AuthenticationFailedError('p', new Error('password authentication failed')),
  new HealthCheckTimeoutError('p', 500),
  new TransactionEndedError('p', 1),
  new QueueFullError('p', 0),
] as const;

function handled(error: AnyConnectionPoolError): string {
  switch (error.code) {
    case 'NOA_POOL_DRAIN_TIMEOUT':
      return `unreleased ${error.unreleased.length}`;
    case 'NOA_POOL_ACQUIRE_TIMEOUT':
    case 'NOA_POOL_ACQUIRE_ABORTED':
    case 'NOA_POOL_CLOSED':
    case 'NOA_POOL_BACKEND_UNAVAILABLE':
    case 'NOA_POOL_NOT_BORROWED':
    case 'NOA_POOL_QUERY_TIMEOUT':
    case 'NOA_POOL_TRANSACTION_RETRIES_EXHAUSTED':
    case 'NOA_POOL_DRIVER_NOT_INSTALLED':
    case 'NOA_POOL_AUTH_FAILED':
    case 'NOA_POOL_HEALTH_CHECK_TIMEOUT':
    case 'NOA_POOL_TRANSACTION_ENDED':
    case 'NOA_POOL_QUEUE_FULL':
      return error.code;
    default: {
      const unhandled: never = error;
      return unhandled;
    }
  }
}

describe('@noa/connection-pool error codes', () => {
  it('are literal types, and ConnectionPoolErrorCode is their union', () => {
    expectTypeOf<PoolClosedError['code']>().toEqualTypeOf<'NOA_POOL_CLOSED'>();
    expectTypeOf<ConnectionPoolErrorCode>().toEqualTypeOf<
      | 'NOA_POOL_ACQUIRE_TIMEOUT'
      | 'NOA_POOL_ACQUIRE_ABORTED'
      | 'NOA_POOL_CLOSED'
      | 'NOA_POOL_DRAIN_TIMEOUT'
      | 'NOA_POOL_BACKEND_UNAVAILABLE'
      | 'NOA_POOL_NOT_BORROWED'
      | 'NOA_POOL_QUERY_TIMEOUT'
      | 'NOA_POOL_TRANSACTION_RETRIES_EXHAUSTED'
      | 'NOA_POOL_DRIVER_NOT_INSTALLED'
      | 'NOA_POOL_AUTH_FAILED'
      | 'NOA_POOL_HEALTH_CHECK_TIMEOUT'
      | 'NOA_POOL_TRANSACTION_ENDED'
      | 'NOA_POOL_QUEUE_FULL'
    >();
    expectTypeOf<ConnectionPoolError['code']>().toEqualTypeOf<ConnectionPoolErrorCode>();
  });

  it('narrow the error by code, and instanceof holds as before', () => {
    expect(errors.map(handled)).toEqual([
      'NOA_POOL_ACQUIRE_TIMEOUT',
      'NOA_POOL_ACQUIRE_ABORTED',
      'NOA_POOL_CLOSED',
      'unreleased 0',
      'NOA_POOL_BACKEND_UNAVAILABLE',
      'NOA_POOL_NOT_BORROWED',
      'NOA_POOL_QUERY_TIMEOUT',
      'NOA_POOL_TRANSACTION_RETRIES_EXHAUSTED',
      'NOA_POOL_DRIVER_NOT_INSTALLED',
      'NOA_POOL_AUTH_FAILED',
      'NOA_POOL_HEALTH_CHECK_TIMEOUT',
      'NOA_POOL_TRANSACTION_ENDED',
      'NOA_POOL_QUEUE_FULL',
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(ConnectionPoolError);
      expect(error).toBeInstanceOf(NoaError);
    }
  });
});
