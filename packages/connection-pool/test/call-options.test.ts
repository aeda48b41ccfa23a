import { ConfigError } from '@noa/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  acquireOptionsCheck,
  badOptions,
  clusterAcquireOptionsCheck,
  connectOptionsCheck,
  mongoConnectOptionsCheck,
  mongoDbOptionsCheck,
  mongoRunOptionsCheck,
  noteWriteOptionsCheck,
  noteWriteSessionCheck,
  queryOptionsCheck,
  readDbOptionsCheck,
} from '../src/call-options.js';
import { BackendUnavailableError, Pool } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';
import { mysqlDriver } from '../src/mysql.js';
import { createPgPool, pgDriver } from '../src/pg.js';
import { createRedisPool } from '../src/redis.js';

/** A pool whose primary refuses connections: a call that reaches the network fails differently. */
const unreachable = () => createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa' });

async function fieldsOfRejection(attempt: Promise<unknown>): Promise<string[]> {
  const error = await attempt.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).fields;
}

describe('withTransaction options', () => {
  it('are checked before a connection is asked for', async () => {
    const db = unreachable();
    try {
      const run = (options: unknown) => db.withTransaction(async () => {}, options as never);
      expect(await fieldsOfRejection(run({ isolation: 'SERIALIZABLE; DROP TABLE x' }))).toEqual([
        'isolation',
      ]);
      expect(await fieldsOfRejection(run({ isolaton: 'serializable' }))).toEqual(['isolaton']);
      expect(await fieldsOfRejection(run({ readOnly: 'yes' }))).toEqual(['readOnly']);
      expect(await fieldsOfRejection(run({ maxRetries: -1 }))).toEqual(['maxRetries']);
      expect(await fieldsOfRejection(run({ retryOn: '40001' }))).toEqual(['retryOn']);
      expect(await fieldsOfRejection(run({ signal: {} }))).toEqual(['signal']);
      expect(db.health().primary.stats.size).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('drivers send fixed text per isolation level and refuse any other', () => {
    expect(pgDriver.beginStatements('repeatable read', true)).toEqual([
      'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
    ]);
    expect(mysqlDriver.beginStatements('serializable', false)).toEqual([
      'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
      'START TRANSACTION',
    ]);
    for (const driver of [pgDriver, mysqlDriver]) {
      for (const bad of ['serializable; SELECT 1', 'SERIALIZABLE', 'constructor', 'toString']) {
        expect(() => driver.beginStatements(bad as never, false)).toThrow(ConfigError);
      }
    }
  });
});

describe('per-call options are strict', () => {
  it('query(): a misspelt key or a bad value is refused, naming the field, before routing', async () => {
    const db = unreachable();
    try {
      const query = (options: unknown) => db.query('SELECT 1', [], options as never);
      // Each of these used to run, with read-your-writes or the replica hint silently off.
      expect(await fieldsOfRejection(query({ sesion: 'u1' }))).toEqual(['sesion']);
      expect(await fieldsOfRejection(query({ target: 'replcia' }))).toEqual(['target']);
      expect(await fieldsOfRejection(query({ session: 42 }))).toEqual(['session']);
      expect(await fieldsOfRejection(query({ signal: 'abort' }))).toEqual(['signal']);
      // A function in the options' place is pg.Pool's callback form (pg-query-forms.test.ts);
      // where no callback form exists it is refused naming `callback` (query-callback.test.ts).
      expect(db.health().primary.stats.size).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('query(): valid options (undefined values too) pass the check and reach the server', async () => {
    const db = unreachable();
    try {
      const signal = new AbortController().signal;
      for (const options of [
        undefined,
        {},
        { session: 'u1', target: 'primary', signal },
        { target: 'replica', session: undefined },
      ] as const) {
        await expect(db.query('SELECT 1', [], options)).rejects.toBeInstanceOf(BackendUnavailableError);
      }
    } finally {
      await db.close();
    }
  });

  it('acquire() and connect() of a SQL pool check the role and options', async () => {
    const db = unreachable();
    try {
      expect(await fieldsOfRejection(db.acquire('replcia' as never))).toEqual(['role']);
      expect(await fieldsOfRejection(db.acquire('replica', { sigal: undefined } as never))).toEqual([
        'sigal',
      ]);
      expect(await fieldsOfRejection(db.connect({ rol: 'replica' } as never))).toEqual(['rol']);
      expect(await fieldsOfRejection(db.connect({ role: 'reader' } as never))).toEqual(['role']);
      await expect(db.connect({ role: 'replica' })).rejects.toBeInstanceOf(BackendUnavailableError);
    } finally {
      await db.close();
    }
  });

  it('Pool#acquire() and use(): unknown keys and bad timeouts are refused', async () => {
    const pool = new Pool({ create: async () => ({}), destroy: async () => {} }, { max: 1 });
    try {
      expect(await fieldsOfRejection(pool.acquire({ timeout: 5 } as never))).toEqual(['timeout']);
      expect(await fieldsOfRejection(pool.acquire({ timeoutMs: -1 }))).toEqual(['timeoutMs']);
      expect(await fieldsOfRejection(pool.acquire({ timeoutMs: 2 ** 31 }))).toEqual(['timeoutMs']);
      expect(await fieldsOfRejection(pool.use(async () => {}, { signl: undefined } as never))).toEqual([
        'signl',
      ]);
      expect(pool.stats.active).toBe(0);
      const resource = await pool.acquire({ timeoutMs: 100, signal: new AbortController().signal });
      pool.release(resource);
    } finally {
      await pool.close();
    }
  });

  it('RedisPool#use() and MongoPool#readDb() check theirs', async () => {
    const redis = createRedisPool({ redis: 'redis://127.0.0.1:1' });
    try {
      expect(await fieldsOfRejection(redis.use(async () => {}, { timeout: 5 } as never))).toEqual([
        'timeout',
      ]);
    } finally {
      await redis.close();
    }
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/x' });
    let thrown: unknown;
    try {
      mongo.readDb('x', { sesion: 'u1' } as never);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).fields).toEqual(['sesion']);
    await mongo.close();
  });

  it('MongoPool#run() refuses options it does not take, before running fn', async () => {
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/x' });
    try {
      let ran = 0;
      const fn = async () => {
        ran += 1;
        return 'ran';
      };
      const run = (extra: unknown) => mongo.run(fn, extra as never);
      // As a SQL pool's query() does: a deadline or session that would be silently ignored.
      expect(await fieldsOfRejection(run({ timeoutMs: 500 }))).toEqual(['timeoutMs']);
      expect(await fieldsOfRejection(run({ session: 'u1', signal: AbortSignal.timeout(10) }))).toEqual([
        'session',
        'signal',
      ]);
      expect(await fieldsOfRejection(run(500))).toHaveLength(1);
      expect(ran).toBe(0);
      expect(await run(undefined)).toBe('ran');
      expect(await run({})).toBe('ran');
      expect(ran).toBe(2);
    } finally {
      await mongo.close();
    }
  });
});

describe('MongoPool#db(), connect() and noteWrite() check their arguments as run() does', () => {
  function fieldsOfThrow(attempt: () => unknown): string[] {
    let thrown: unknown;
    try {
      attempt();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    return (thrown as ConfigError).fields;
  }

  it('connect(extra) rejects, naming the field, before dialling', async () => {
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/x', serverSelectionTimeoutMs: 50 });
    try {
      const connect = (extra: unknown) => (mongo.connect as (extra: unknown) => Promise<unknown>)(extra);
      // Each used to dial with the pool's own settings, the deadline or read preference ignored.
      expect(await fieldsOfRejection(connect({ timeoutMs: 500 }))).toEqual(['timeoutMs']);
      expect(await fieldsOfRejection(connect({ readPreference: 'primary' }))).toEqual(['readPreference']);
      expect(await fieldsOfRejection(connect('primary'))).toHaveLength(1);
      expect(mongo.stats.size).toBe(0);
      // Nothing (or nothing in an object) still dials: the unreachable server is the failure.
      await expect(connect({})).rejects.not.toBeInstanceOf(ConfigError);
    } finally {
      await mongo.close();
    }
  });

  it('db(name, extra) and noteWrite(session, extra) throw, naming the field', async () => {
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/x' });
    try {
      const db = mongo.db as (name?: unknown, extra?: unknown) => unknown;
      const noteWrite = mongo.noteWrite as (session?: unknown, extra?: unknown) => void;
      // db() always uses the primary: a read preference given to it would be dropped.
      expect(fieldsOfThrow(() => db.call(mongo, 'x', { readPreference: 'secondary' }))).toEqual([
        'readPreference',
      ]);
      expect(fieldsOfThrow(() => db.call(mongo, 'x', 'secondary'))).toHaveLength(1);
      // A window or an object where the session key goes: read-your-writes silently off.
      expect(fieldsOfThrow(() => noteWrite.call(mongo, 'u1', { windowMs: 5_000 }))).toEqual(['windowMs']);
      expect(fieldsOfThrow(() => noteWrite.call(mongo, { session: 'u1' }))).toEqual(['session']);
      expect(fieldsOfThrow(() => noteWrite.call(mongo, 42))).toEqual(['session']);
      // Valid calls: noteWrite needs no connection; db() without one is the usual error.
      noteWrite.call(mongo, 'u1', {});
      noteWrite.call(mongo, undefined, undefined);
      noteWrite.call(mongo);
      expect(() => db.call(mongo, 'x', {})).toThrow(/call connect\(\) before/);
    } finally {
      await mongo.close();
    }
  });
});

describe('the cheap check agrees with the schema', () => {
  const value = fc.oneof(
    fc.constantFrom(
      undefined,
      null,
      'primary',
      'replica',
      'u1',
      '',
      0,
      1,
      -1,
      1.5,
      2 ** 31,
      Number.NaN,
      true,
    ),
    fc.constant(new AbortController().signal),
    fc.constant({ aborted: false, addEventListener: () => {} }),
    fc.constant({}),
  );
  const options = fc.oneof(
    fc.dictionary(
      fc.constantFrom('session', 'target', 'signal', 'timeoutMs', 'role', 'sesion', 'toString', '__proto__'),
      value,
    ),
    value,
  );
  it.each([
    queryOptionsCheck,
    acquireOptionsCheck,
    clusterAcquireOptionsCheck,
    connectOptionsCheck,
    readDbOptionsCheck,
    mongoRunOptionsCheck,
    mongoConnectOptionsCheck,
    mongoDbOptionsCheck,
    noteWriteOptionsCheck,
    noteWriteSessionCheck,
  ])('$component: accepted exactly when the schema accepts', (check) => {
    fc.assert(
      fc.property(options, (input) => {
        expect(badOptions(check, input) === undefined).toBe(
          input === undefined || check.schema.safeParse(input).success,
        );
      }),
      { numRuns: 2_000 },
    );
  });
});
