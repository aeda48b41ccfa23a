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

describe('ConfigError message', () => {
  const issues = [{ path: 'attempts', message: 'expected a number' }];

  it('says "options" once when the component is named for its options', () => {
    expect(new ConfigError('job options', issues).message).toBe(
      'Invalid job options: attempts: expected a number',
    );
    expect(new ConfigError('Queue.defaultJobOptions', issues).message).toBe(
      'Invalid Queue.defaultJobOptions: attempts: expected a number',
    );
    expect(new ConfigError('Scheduler job Options', issues).message).toBe(
      'Invalid Scheduler job Options: attempts: expected a number',
    );
    expect(new ConfigError('Worker', issues).message).toBe(
      'Invalid Worker options: attempts: expected a number',
    );
    // A name merely ending in the letters is not one.
    expect(new ConfigError('coptions', issues).message).toBe(
      'Invalid coptions options: attempts: expected a number',
    );
    expect(new ConfigError('job options', issues).details).toEqual({ component: 'job options', issues });
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

describe('parseOptions messages', () => {
  // zod 4 says only "Invalid input" for a failed union or z.custom: the messages must say what is
  // taken and what was given, without echoing secrets.
  const message = (schema: z.ZodType, input: unknown) =>
    captureConfigError(() => parseOptions('thing', schema, input)).message.replace(
      'Invalid thing options: ',
      '',
    );
  const isFunction = (value: unknown) => typeof value === 'function';
  const keyKinds = ['ip', 'user', 'api-key'] as const;

  it('lists what a union of literals and a z.custom takes, and what it got', () => {
    const bare = z.object({ keyBy: z.union([z.enum(keyKinds), z.custom(isFunction)]) });
    expect(message(bare, { keyBy: 'IP' })).toBe(
      "keyBy: expected one of 'ip', 'user', 'api-key' or a value its check accepts, got 'IP'",
    );
    const named = z.object({
      keyBy: z.union([z.enum(keyKinds), z.custom(isFunction, { message: 'a function' })]),
    });
    expect(message(named, { keyBy: 'IP' })).toBe(
      "keyBy: expected one of 'ip', 'user', 'api-key' or a function, got 'IP'",
    );
    const sentence = z.object({
      keyBy: z.union([z.enum(keyKinds), z.custom(isFunction, { message: 'must be a key kind or function' })]),
    });
    expect(message(sentence, { keyBy: 7 })).toBe(
      "keyBy: expected one of 'ip', 'user', 'api-key' or a key kind or function, got 7",
    );
  });

  it('lists types and literals of a union in the order of its branches', () => {
    const prefetch = z.object({ prefetch: z.union([z.number().int().nonnegative(), z.literal('auto')]) });
    expect(message(prefetch, { prefetch: 'max' })).toBe("prefetch: expected a number or 'auto', got 'max'");
    const subnet = z.object({ ipv6Subnet: z.union([z.number(), z.literal(false)]) });
    expect(message(subnet, { ipv6Subnet: true })).toBe('ipv6Subnet: expected a number or false, got true');
    const nested = z.union([z.union([z.literal('a'), z.literal('b')]), z.null(), z.array(z.string())]);
    expect(message(nested, {})).toBe("(root): expected one of 'a', 'b', null or an array, got an object");
    const connection = z.object({ redis: z.union([z.string(), z.record(z.string(), z.unknown())]) });
    expect(message(connection, { redis: 5 })).toBe('redis: expected a string or an object, got 5');
    expect(message(connection, {})).toBe('redis: required (expected a string or an object)');
  });

  it('reports the issues of the union branch whose fields the input reached', () => {
    const schema = z.object({
      connection: z.union([
        z.string().min(1),
        z.object({ host: z.string(), port: z.number().int() }),
        z.array(z.string()),
      ]),
    });
    expect(message(schema, { connection: { host: 'db', port: '5432' } })).toBe(
      "connection.port: expected a number, got '5432'",
    );
    expect(message(schema, { connection: { host: 1, port: 2 } })).toBe(
      'connection.host: expected a string, got 1',
    );
    expect(message(schema, { connection: ['a', 2] })).toBe('connection.1: expected a string, got 2');
  });

  it('names the options of a discriminated union', () => {
    const schema = z.object({
      backoff: z.discriminatedUnion('type', [
        z.object({ type: z.literal('exponential'), delayMs: z.number().optional() }),
        z.object({ type: z.literal('fixed'), delayMs: z.number() }),
      ]),
    });
    expect(message(schema, { backoff: { type: 'linear' } })).toBe(
      "backoff.type: expected one of 'exponential', 'fixed', got 'linear'",
    );
    expect(message(schema, { backoff: {} })).toBe(
      "backoff.type: required (expected one of 'exponential', 'fixed')",
    );
    expect(message(schema, { backoff: { type: 'fixed' } })).toBe(
      'backoff.delayMs: required (expected a number)',
    );
  });

  it('says "required" for a missing value, and what was given otherwise', () => {
    const schema = z.object({
      name: z.string(),
      handler: z.custom(isFunction),
      queue: z.custom((value) => value instanceof Map, { message: 'expected a Map' }),
      limits: z.array(z.object({ points: z.number() })),
    });
    expect(message(schema, { limits: [{}] })).toBe(
      'name: required (expected a string); handler: required; queue: required (expected a Map); limits.0.points: required (expected a number)',
    );
    expect(message(schema, { name: 5, handler: 'run', queue: new Set(), limits: {} })).toBe(
      "name: expected a string, got 5; handler: invalid value, got 'run'; queue: expected a Map, got an instance of Set; limits: expected an array, got an object",
    );
  });

  it('adds what was given to a z.custom message that says what it takes', () => {
    const schema = z.object({
      redis: z.custom((value) => typeof value === 'object' && value !== null, {
        message: 'an ioredis Redis or Cluster instance',
      }),
    });
    expect(message(schema, { redis: 'redis://app:hunter2@cache:6379' })).toBe(
      'redis: expected an ioredis Redis or Cluster instance, got a URL-like string',
    );
    expect(message(schema, { redis: 42 })).toBe(
      'redis: expected an ioredis Redis or Cluster instance, got 42',
    );
    expect(message(schema, {})).toBe('redis: required (expected an ioredis Redis or Cluster instance)');
    const registry = z.object({
      registry: z.custom(
        (value) => typeof value === 'object' && value !== null,
        'must be a prom-client Registry',
      ),
    });
    expect(message(registry, { registry: 5 })).toBe('registry: must be a prom-client Registry, got 5');
    expect(message(registry, {})).toBe('registry: required (must be a prom-client Registry)');
  });

  it('keeps a schema’s own message', () => {
    const schema = z.object({
      points: z.number().positive({ message: 'too few points' }),
      url: z.string().refine((url) => url.startsWith('redis://'), { message: 'not a redis:// URL' }),
      role: z.union([z.array(z.number()), z.literal('unlimited')], {
        error: () => 'neither a list nor unlimited',
      }),
    });
    expect(message(schema, { points: -1, url: 'postgres://db', role: 'none' })).toBe(
      'points: too few points; url: not a redis:// URL; role: neither a list nor unlimited',
    );
  });

  it('does not take the value a refine of an object saw for the value of the field it names', () => {
    // A refine on an object with `path` (or a superRefine's issue) carries the whole object.
    const schema = z
      .object({ min: z.number(), max: z.number().optional() })
      .refine((range) => range.max === undefined || range.max >= range.min, {
        message: 'a number no less than min',
        path: ['max'],
      })
      .superRefine((range, context) => {
        if (range.min < 0) context.addIssue({ code: 'custom', path: ['min'], message: 'must be at least 0' });
        if (range.min === -2) context.addIssue({ code: 'custom', path: ['min'] });
      });
    expect(message(schema, { min: 3, max: 1 })).toBe('max: expected a number no less than min, got 1');
    expect(message(schema, { min: -2 })).toBe('min: must be at least 0, got -2; min: invalid value, got -2');
    const nested = z.object({
      limits: z.array(z.object({ points: z.number() })).superRefine((limits, context) => {
        if (limits.length > 1)
          context.addIssue({ code: 'custom', path: [1], message: 'a limit unlike the first' });
      }),
    });
    expect(message(nested, { limits: [{ points: 1 }, { points: 1 }] })).toBe(
      'limits.1: expected a limit unlike the first, got an object',
    );
  });

  it('prefers, among union branches that got past the type, the one whose tags matched', () => {
    const schema = z.object({
      store: z.union([
        z.object({ kind: z.literal('memory'), maxKeys: z.number() }),
        z.object({ kind: z.literal('redis'), prefix: z.string() }),
      ]),
    });
    expect(message(schema, { store: { kind: 'redis', prefix: 1 } })).toBe(
      'store.prefix: expected a string, got 1',
    );
    expect(message(schema, { store: { kind: 'memory', maxKeys: 'x' } })).toBe(
      "store.maxKeys: expected a number, got 'x'",
    );
    expect(message(schema, { store: { kind: 'disk' } })).toBe(
      "store.kind: expected one of 'memory', 'redis', got 'disk'",
    );
  });

  it('reports the check a union branch of the right type failed, not as an alternative', () => {
    // zod 4 runs an array's max on a string's length too: that says nothing of what is taken.
    const rules = z.object({
      roles: z.record(
        z.string(),
        z.union([
          z.array(z.object({ a: z.number() })).max(2, 'give at most 2 limits per rule'),
          z.literal('unlimited'),
        ]),
      ),
    });
    expect(message(rules, { roles: { x: [{ a: 1 }, { a: 1 }, { a: 1 }] } })).toBe(
      'roles.x: give at most 2 limits per rule',
    );
    expect(message(rules, { roles: { x: 'foo' } })).toBe(
      "roles.x: expected an array or 'unlimited', got 'foo'",
    );
    expect(message(rules, { roles: { x: [{ a: 'no' }] } })).toBe("roles.x.0.a: expected a number, got 'no'");
  });

  it('says when an exclusive union matched more than one branch', () => {
    const schema = z.object({ limit: z.xor([z.number(), z.number().int()]) });
    expect(message(schema, { limit: 3 })).toBe('limit: matches 2 of its alternatives, expected exactly one');
  });

  it('never echoes secret-looking fields, URLs or long strings, and keeps the message on one line', () => {
    const schema = z.object({
      password: z.number(),
      apiKey: z.enum(['a', 'b']),
      databaseUrl: z.number(),
      authToken: z.boolean(),
      keyPrefix: z.number(),
      name: z.number(),
      note: z.number(),
      dsn: z.object({ user: z.string() }),
    });
    const input = {
      password: 'hunter2',
      apiKey: 'sk-live-123',
      databaseUrl: 'postgres://u:p@db/app',
      authToken: 1234,
      keyPrefix: 'app:\n',
      name: 'x'.repeat(41),
      note: 'user:pass@host',
      dsn: 'mysql:host=db;password=secret',
    };
    expect(message(schema, input)).toBe(
      [
        'password: expected a number, got a string',
        "apiKey: expected one of 'a', 'b', got a string",
        'databaseUrl: expected a number, got a string',
        'authToken: expected a boolean, got a number',
        "keyPrefix: expected a number, got 'app:\\n'",
        'name: expected a number, got a string of 41 characters',
        'note: expected a number, got a URL-like string',
        'dsn: expected an object, got a string',
      ].join('; '),
    );
    expect(message(z.object({ name: z.number() }), { name: 'x'.repeat(40) })).toBe(
      `name: expected a number, got '${'x'.repeat(40)}'`,
    );
  });

  it('adds what was given to any message of a schema that says what it takes', () => {
    const schema = z.object({
      points: z.number().int().positive({ message: 'must be a positive integer' }),
      port: z.number({ error: 'a port number' }),
      role: z.union([z.array(z.number()), z.literal('unlimited')], {
        error: () => "must be 'unlimited' or a list",
      }),
    });
    expect(message(schema, { points: 0, port: '80', role: 'none' })).toBe(
      "points: must be a positive integer, got 0; port: expected a port number, got '80'; role: must be 'unlimited' or a list, got 'none'",
    );
    expect(message(schema, { points: 1, role: [] })).toBe('port: required (expected a port number)');
  });

  it('throws a ConfigError even for a value whose prototype cannot be read', () => {
    const hostile = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    const schema = z.object({ limit: z.custom((value) => typeof value === 'number', 'a number') });
    expect(message(schema, { limit: hostile })).toBe('limit: expected a number, got an object');
  });

  it('keeps zod’s own words for bounds and formats, and adds what was given', () => {
    const schema = z.object({
      points: z.number().int().positive(),
      roles: z.array(z.enum(['admin'])).max(1),
      name: z.string().min(1),
      email: z.email(),
      step: z.number().multipleOf(5),
      dbUrl: z.url(),
    });
    const input = { points: 0, roles: ['admin', 'admin'], name: '', email: 'ops', step: 7, dbUrl: 'no url' };
    expect(message(schema, input)).toBe(
      [
        'points: Too small: expected number to be >0, got 0',
        'roles: Too big: expected array to have <=1 items, got an array',
        "name: Too small: expected string to have >=1 characters, got ''",
        "email: Invalid email address, got 'ops'",
        'step: Invalid number: must be a multiple of 5, got 7',
        'dbUrl: Invalid URL, got a string',
      ].join('; '),
    );
  });
});

describe('parseOptions union branch choice', () => {
  const message = (schema: z.ZodType, input: unknown) =>
    captureConfigError(() => parseOptions('thing', schema, input)).message.replace(
      'Invalid thing options: ',
      '',
    );

  it('takes the branch with the deepest issue, then the one with the fewest issues', () => {
    const schema = z.union([
      z.object({ a: z.object({ b: z.object({ c: z.number() }) }) }),
      z.object({ a: z.object({ x: z.number(), y: z.number() }) }),
      z.object({ a: z.object({ z: z.number() }) }),
    ]);
    expect(message(schema, { a: { b: { c: 'x' } } })).toBe("a.b.c: expected a number, got 'x'");
    expect(message(schema, { a: {} })).toBe('a.b: required (expected an object)');
    const flat = z.union([z.object({ x: z.number(), y: z.number() }), z.object({ z: z.number() })]);
    expect(message(flat, {})).toBe('z: required (expected a number)');
  });
});
