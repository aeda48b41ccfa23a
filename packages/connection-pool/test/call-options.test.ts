import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createPgPool, mysqlDriver, pgDriver } from '../src/index.js';

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
