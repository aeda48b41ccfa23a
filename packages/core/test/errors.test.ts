import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { ConfigError, NoaError, parseOptions, TimeoutError } from '../src/index.js';

describe('parseOptions', () => {
  const schema = z.object({ limit: z.number().int().positive(), nested: z.object({ name: z.string() }) });

  it('returns the parsed value for good input', () => {
    expect(parseOptions('thing', schema, { limit: 3, nested: { name: 'a' } })).toEqual({
      limit: 3,
      nested: { name: 'a' },
    });
  });

  it('throws a ConfigError naming every bad field', () => {
    let caught: unknown;
    try {
      parseOptions('thing', schema, { limit: -1, nested: { name: 5 } });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.code).toBe('NOA_CONFIG_INVALID');
    expect(error.fields).toEqual(['limit', 'nested.name']);
    expect(error.message).toMatch(/^Invalid thing options: limit: .*; nested\.name: /);
    expect(error).toBeInstanceOf(NoaError);
  });

  it('names each unknown key of a strict object as its own field', () => {
    const strict = z.strictObject({ limit: z.number(), nested: z.strictObject({ name: z.string() }) });
    let caught: unknown;
    try {
      parseOptions('thing', strict, { limit: 1, limt: 2, nested: { name: 'a', nmae: 'b' } });
    } catch (error) {
      caught = error;
    }
    const error = caught as ConfigError;
    expect([...error.fields].sort()).toEqual(['limt', 'nested.nmae']);
    expect(error.message).toContain('limt: unknown option');
    expect(error.message).toContain('nested.nmae: unknown option');
  });
});

describe('errors', () => {
  it('keep a stable code, the cause and details', () => {
    const cause = new Error('socket closed');
    const error = new TimeoutError('redis EVALSHA', 25, { cause, details: { key: 'k' } });
    expect(error.code).toBe('NOA_TIMEOUT');
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ operation: 'redis EVALSHA', timeoutMs: 25, key: 'k' });
    expect(error.name).toBe('TimeoutError');
  });
});

describe('errors from a second copy of @noa/core (dual install)', () => {
  // A service can end up with two copies (its own @noa/core and a package's): branching with
  // instanceof on errors the other copy threw must still work.
  it('are instances of this copy’s classes of the same name, and only of those', async () => {
    vi.resetModules();
    const other = await import('../src/errors.js');
    expect(other.TimeoutError).not.toBe(TimeoutError);
    const timeout = new other.TimeoutError('op', 5);
    expect(timeout).toBeInstanceOf(TimeoutError);
    expect(timeout).toBeInstanceOf(NoaError);
    expect(timeout).not.toBeInstanceOf(ConfigError);
    expect(new TimeoutError('op', 5)).toBeInstanceOf(other.NoaError);
    const config = new other.ConfigError('thing', [{ path: 'limit', message: 'bad' }]);
    expect(config).toBeInstanceOf(ConfigError);
    expect(config).not.toBeInstanceOf(TimeoutError);
    expect(new Error('plain')).not.toBeInstanceOf(NoaError);
    expect(null).not.toBeInstanceOf(NoaError);
  });
});

describe('errors of two packages with the same class name', () => {
  // cache-manager and connection-pool both export a BackendUnavailableError: a catch that
  // branches on one package's class must not take the other package's error for it.
  it('are not instances of each other', () => {
    const cache = class BackendUnavailableError extends NoaError {};
    const pool = class BackendUnavailableError extends NoaError {};
    const error = new pool('NOA_POOL_BACKEND_UNAVAILABLE', 'pool down');
    expect(error).toBeInstanceOf(pool);
    expect(error).toBeInstanceOf(NoaError);
    expect(error).not.toBeInstanceOf(cache);
  });
});

describe('NoaError as JSON', () => {
  // Errors end up in JSON logs and HTTP bodies: the message and the cause must survive.
  it('keeps name, code, message, details and the cause chain', () => {
    const inner = Object.assign(new Error('ECONNRESET by peer'), { code: 'ECONNRESET' });
    const error = new TimeoutError('redis GET', 25, {
      cause: new NoaError('NOA_X', 'wrapped', { cause: inner }),
    });
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      name: 'TimeoutError',
      code: 'NOA_TIMEOUT',
      message: 'redis GET did not finish within 25 ms',
      details: { operation: 'redis GET', timeoutMs: 25 },
      cause: {
        name: 'NoaError',
        code: 'NOA_X',
        message: 'wrapped',
        details: {},
        cause: { name: 'Error', code: 'ECONNRESET', message: 'ECONNRESET by peer' },
      },
    });
    expect(JSON.parse(JSON.stringify(new ConfigError('thing', [])))).not.toHaveProperty('cause');
  });
});

describe('parseOptions with a union', () => {
  // zod says only "Invalid input" at the union: when the input is of one branch's type, that
  // branch's own issues say what the user got wrong, at the field they wrote.
  const schema = z
    .object({
      redis: z.union([
        z.string().refine((url) => url.startsWith('redis://'), { message: 'not a redis:// URL' }),
        z.record(z.string(), z.unknown()),
      ]),
      limit: z.union([z.number(), z.object({ points: z.number().positive() }).strict()]).optional(),
    })
    .strict();

  it('reports the issues of the branch the input belongs to', () => {
    const error = captureConfigError(() =>
      parseOptions('pool', schema, { redis: 'postgres://db', limit: { points: -1, pionts: 2 } }),
    );
    expect(error.fields).toEqual(['redis', 'limit.points', 'limit.pionts']);
    expect(error.message).toContain('redis: not a redis:// URL');
    expect(error.message).toContain('limit.pionts: unknown option');
  });

  it('keeps the union issue when the input is of no branch’s type', () => {
    const error = captureConfigError(() => parseOptions('pool', schema, { redis: 5 }));
    expect(error.fields).toEqual(['redis']);
  });
});

function captureConfigError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('no ConfigError thrown');
}
