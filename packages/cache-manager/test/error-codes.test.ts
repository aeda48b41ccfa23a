import { readFileSync } from 'node:fs';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type AnyCacheManagerError,
  BackendUnavailableError,
  CacheManagerError,
  type CacheManagerErrorCode,
  CircuitOpenError,
  ClosedError,
  ConfigError,
  EdgePurgeError,
  FactoryError,
  FactoryTimeoutError,
  HealthCheckTimeoutError,
  LockTimeoutError,
  NoaError,
  SerializationError,
  TimeoutError,
  WarmAbortedError,
} from '../src/index.js';

// Each error class's `code` is a literal type and `CacheManagerErrorCode` is their union, so that
// a `switch (error.code)` narrows the error and can be exhaustive (checked by `tsc`, which failed
// on `code: string`); at run time nothing changed.

const errors = [
  new FactoryError('k'),
  new FactoryTimeoutError('k', 10),
  new LockTimeoutError('k', 10),
  new BackendUnavailableError('get'),
  new WarmAbortedError({ total: 3, done: 1, loaded: 1, skipped: 0, failed: 0 }),
  new SerializationError('encode'),
  new EdgePurgeError(['t']),
  new HealthCheckTimeoutError(500),
] as const;

function handled(error: AnyCacheManagerError): string {
  switch (error.code) {
    case 'NOA_CACHE_WARM_ABORTED':
      return `warmed ${error.report.done}`;
    case 'NOA_CACHE_FACTORY_FAILED':
    case 'NOA_CACHE_FACTORY_TIMEOUT':
    case 'NOA_CACHE_LOCK_TIMEOUT':
    case 'NOA_CACHE_BACKEND_UNAVAILABLE':
    case 'NOA_CACHE_SERIALIZATION':
    case 'NOA_CACHE_EDGE_PURGE_FAILED':
    case 'NOA_CACHE_HEALTH_CHECK_TIMEOUT':
      return error.code;
    default: {
      const unhandled: never = error;
      return unhandled;
    }
  }
}

describe('@noa/cache-manager error codes', () => {
  it('are literal types, and CacheManagerErrorCode is their union', () => {
    expectTypeOf<FactoryError['code']>().toEqualTypeOf<'NOA_CACHE_FACTORY_FAILED'>();
    expectTypeOf<CacheManagerErrorCode>().toEqualTypeOf<
      | 'NOA_CACHE_FACTORY_FAILED'
      | 'NOA_CACHE_FACTORY_TIMEOUT'
      | 'NOA_CACHE_LOCK_TIMEOUT'
      | 'NOA_CACHE_BACKEND_UNAVAILABLE'
      | 'NOA_CACHE_WARM_ABORTED'
      | 'NOA_CACHE_SERIALIZATION'
      | 'NOA_CACHE_EDGE_PURGE_FAILED'
      | 'NOA_CACHE_HEALTH_CHECK_TIMEOUT'
    >();
    expectTypeOf<CacheManagerError['code']>().toEqualTypeOf<CacheManagerErrorCode>();
  });

  it('narrow the error by code, and instanceof holds as before', () => {
    expect(errors.map(handled)).toEqual([
      'NOA_CACHE_FACTORY_FAILED',
      'NOA_CACHE_FACTORY_TIMEOUT',
      'NOA_CACHE_LOCK_TIMEOUT',
      'NOA_CACHE_BACKEND_UNAVAILABLE',
      'warmed 1',
      'NOA_CACHE_SERIALIZATION',
      'NOA_CACHE_EDGE_PURGE_FAILED',
      'NOA_CACHE_HEALTH_CHECK_TIMEOUT',
    ]);
    for (const error of errors) {
      expect(error).toBeInstanceOf(CacheManagerError);
      expect(error).toBeInstanceOf(NoaError);
    }
  });

  it("are the README's Errors table, class by class, each importable from the package", () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('\n## Errors\n'), readme.indexOf('\n## API reference\n'));
    const documented = new Map(
      [...section.matchAll(/^\| `([A-Za-z]+)` +\| `(NOA_[A-Z_]+)`/gm)].map((match) => [match[1]!, match[2]!]),
    );
    const thrown = [
      ...errors,
      new ConfigError('cache', [{ path: 'ttlMs', message: 'bad' }]),
      new ClosedError('cache'),
      new TimeoutError('redis get', 500),
      new CircuitOpenError('redis'),
    ];
    expect(new Map(thrown.map((error) => [error.constructor.name, error.code]))).toEqual(documented);
    // `fields` names each bad field, as the table says.
    expect(new ConfigError('cache', [{ path: 'ttlMs', message: 'bad' }]).fields).toEqual(['ttlMs']);
  });
});
