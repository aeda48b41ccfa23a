import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  CircuitOpenError,
  ClosedError,
  ConfigError,
  type NoaCoreError,
  type NoaCoreErrorCode,
  NoaError,
  TimeoutError,
} from '../src/index.js';

// Each class's `code` is a literal type and core exports their union, so that a `switch` on
// `error.code` narrows the error and can be checked exhaustive (checked by `tsc`, which failed on
// `code: string`); at run time the codes and `instanceof` are as before.

/** What a caller writes: every code handled, the compiler says when one is added. */
function describeCoreError(error: NoaCoreError): string {
  switch (error.code) {
    case 'NOA_CONFIG_INVALID':
      return `bad ${error.fields.join(', ')}`;
    case 'NOA_TIMEOUT':
    case 'NOA_CIRCUIT_OPEN':
    case 'NOA_CLOSED':
      return error.code;
    default: {
      const unhandled: never = error;
      return unhandled;
    }
  }
}

describe("core's error codes", () => {
  const errors = [
    new ConfigError('Thing', [{ path: 'size', message: 'too big' }]),
    new TimeoutError('get', 5),
    new CircuitOpenError('get'),
    new ClosedError('Thing'),
  ] as const;

  it('are literal types, and NoaCoreErrorCode is their union', () => {
    expectTypeOf<ConfigError['code']>().toEqualTypeOf<'NOA_CONFIG_INVALID'>();
    expectTypeOf<TimeoutError['code']>().toEqualTypeOf<'NOA_TIMEOUT'>();
    expectTypeOf<CircuitOpenError['code']>().toEqualTypeOf<'NOA_CIRCUIT_OPEN'>();
    expectTypeOf<ClosedError['code']>().toEqualTypeOf<'NOA_CLOSED'>();
    expectTypeOf<NoaCoreErrorCode>().toEqualTypeOf<
      'NOA_CONFIG_INVALID' | 'NOA_TIMEOUT' | 'NOA_CIRCUIT_OPEN' | 'NOA_CLOSED'
    >();
    // The base class still takes any code: a subclass of a user's own keeps working.
    expectTypeOf<NoaError['code']>().toEqualTypeOf<string>();
    expect(errors.map((error) => error.code)).toEqual([
      'NOA_CONFIG_INVALID',
      'NOA_TIMEOUT',
      'NOA_CIRCUIT_OPEN',
      'NOA_CLOSED',
    ]);
  });

  it('narrow the error by code, and instanceof holds as before', () => {
    expect(errors.map(describeCoreError)).toEqual([
      'bad size',
      'NOA_TIMEOUT',
      'NOA_CIRCUIT_OPEN',
      'NOA_CLOSED',
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(NoaError);
      expect(error).toBeInstanceOf(Error);
    }
    expect(new NoaError('NOA_MINE', 'mine').code).toBe('NOA_MINE');
  });
});
