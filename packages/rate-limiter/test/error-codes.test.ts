import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  AcquireError,
  type AnyRateLimiterError,
  CostExceedsCapacityError,
  HealthCheckTimeoutError,
  InvalidAdjustmentError,
  InvalidCheckInputError,
  InvalidCostError,
  NoaError,
  RateLimitedError,
  RateLimiterError,
  type RateLimiterErrorCode,
  RateLimitStoreError,
  SyncCheckUnsupportedError,
  UnsupportedOperationError,
} from '../src/index.js';

// Each error class's `code` is a literal type and `RateLimiterErrorCode` is their union, so that a
// `switch (error.code)` narrows the error (to read `retryAfterMs`, `limits`, `reason`) and can be
// exhaustive (checked by `tsc`, which failed on `code: string`); at run time nothing changed.

const errors = [
  new RateLimitedError('k', 1_000, 'limited'),
  new CostExceedsCapacityError('k', 10, ['burst']),
  new RateLimitStoreError('bad reply'),
  new InvalidCostError(-1),
  new InvalidCheckInputError('check', 'key', 'missing'),
  new SyncCheckUnsupportedError('redis'),
  new UnsupportedOperationError('peek', 'no adjust'),
  new InvalidAdjustmentError('points', -1, 'a positive integer'),
  new AcquireError('k', 'timeout', 10, 5),
  new HealthCheckTimeoutError(500),
] as const;

function retryHint(error: AnyRateLimiterError): string {
  switch (error.code) {
    case 'NOA_RATE_LIMITED':
      return `retry in ${error.retryAfterMs} ms`;
    case 'NOA_RATE_LIMIT_ACQUIRE':
      return `gave up: ${error.reason}`;
    case 'NOA_RATE_LIMIT_COST_EXCEEDS_CAPACITY':
      return `never: ${error.limits.join(', ')}`;
    case 'NOA_RATE_LIMIT_INVALID_INPUT':
      return `bad ${error.field}`;
    case 'NOA_RATE_LIMIT_STORE':
    case 'NOA_RATE_LIMIT_INVALID_COST':
    case 'NOA_RATE_LIMIT_SYNC_UNSUPPORTED':
    case 'NOA_RATE_LIMIT_UNSUPPORTED_OPERATION':
    case 'NOA_RATE_LIMIT_INVALID_ADJUSTMENT':
    case 'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT':
      return error.code;
    default: {
      const unhandled: never = error;
      return unhandled;
    }
  }
}

describe('@noa/rate-limiter error codes', () => {
  it('are literal types, and RateLimiterErrorCode is their union', () => {
    expectTypeOf<RateLimitedError['code']>().toEqualTypeOf<'NOA_RATE_LIMITED'>();
    expectTypeOf<AcquireError['code']>().toEqualTypeOf<'NOA_RATE_LIMIT_ACQUIRE'>();
    expectTypeOf<RateLimiterErrorCode>().toEqualTypeOf<
      | 'NOA_RATE_LIMITED'
      | 'NOA_RATE_LIMIT_COST_EXCEEDS_CAPACITY'
      | 'NOA_RATE_LIMIT_STORE'
      | 'NOA_RATE_LIMIT_INVALID_COST'
      | 'NOA_RATE_LIMIT_INVALID_INPUT'
      | 'NOA_RATE_LIMIT_SYNC_UNSUPPORTED'
      | 'NOA_RATE_LIMIT_UNSUPPORTED_OPERATION'
      | 'NOA_RATE_LIMIT_INVALID_ADJUSTMENT'
      | 'NOA_RATE_LIMIT_ACQUIRE'
      | 'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT'
    >();
    // Caught as the base class, the code is still the union (not string).
    expectTypeOf<RateLimiterError['code']>().toEqualTypeOf<RateLimiterErrorCode>();
    expect(new Set(errors.map((error) => error.code)).size).toBe(errors.length);
  });

  it('narrow the error by code, and instanceof holds as before', () => {
    expect(errors.map(retryHint)).toEqual([
      'retry in 1000 ms',
      'never: burst',
      'NOA_RATE_LIMIT_STORE',
      'NOA_RATE_LIMIT_INVALID_COST',
      'bad key',
      'NOA_RATE_LIMIT_SYNC_UNSUPPORTED',
      'NOA_RATE_LIMIT_UNSUPPORTED_OPERATION',
      'NOA_RATE_LIMIT_INVALID_ADJUSTMENT',
      'gave up: timeout',
      'NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT',
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(RateLimiterError);
      expect(error).toBeInstanceOf(NoaError);
      expect(error.code.startsWith('NOA_RATE_LIMIT')).toBe(true);
    }
  });
});
