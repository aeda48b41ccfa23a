import type { QueryOptions as Mysql2QueryOptions } from 'mysql2/promise';
import type { QueryArrayConfig, QueryConfig } from 'pg';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { mysqlDriver } from '../src/drivers/mysql-driver.js';
import type { StatementSettings } from '../src/index.js';
import type { MysqlQueryOptions } from '../src/mysql.js';

// StatementSettings is public (SqlDriver#query's fourth argument): its fields are the ones the
// drivers read, typed, so that a driver or a pool class cannot pass a misspelt or ill-typed one.
describe('StatementSettings', () => {
  it('types the fields the drivers read', () => {
    expectTypeOf<StatementSettings['execute']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<StatementSettings['rowMode']>().toEqualTypeOf<'array' | undefined>();
    expectTypeOf<StatementSettings['name']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<StatementSettings['rowsAsArray']>().toEqualTypeOf<boolean | undefined>();
    expectTypeOf<StatementSettings['namedPlaceholders']>().toEqualTypeOf<boolean | undefined>();
    // What the pool classes pass: mysql2's options beside sql and values, pg's config beside text and values.
    expectTypeOf<Omit<MysqlQueryOptions, 'sql' | 'values'>>().toExtend<StatementSettings>();
    expectTypeOf<Omit<QueryArrayConfig, 'text' | 'values'>>().toExtend<StatementSettings>();
    expectTypeOf<Omit<QueryConfig, 'text' | 'values'>>().toExtend<StatementSettings>();
    // ... and no more: the keys of mysql2's options that MysqlPool refuses are not settings.
    expectTypeOf<StatementSettings>().not.toHaveProperty('timeout');
    expectTypeOf<Pick<Mysql2QueryOptions, 'timeout'>>().not.toExtend<StatementSettings>();
    // @ts-expect-error a misspelt setting is not a setting
    const misspelt: StatementSettings = { excute: true };
    // @ts-expect-error nor is an ill-typed one
    const illTyped: StatementSettings = { execute: 'yes' };
    expect([misspelt, illTyped]).toHaveLength(2);
  });

  it('the mysql2 driver reads execute and passes the rest to mysql2 in its options-object form', async () => {
    const calls: { method: string; statement: unknown; values: unknown }[] = [];
    const conn = {
      query: async (statement: unknown, values?: unknown) => {
        calls.push({ method: 'query', statement, values });
        return [[], []];
      },
      execute: async (statement: unknown, values?: unknown) => {
        calls.push({ method: 'execute', statement, values });
        return [[], []];
      },
    };
    const settings: StatementSettings = { rowsAsArray: true, nestTables: '_' };
    await mysqlDriver.query(conn as never, 'SELECT ?', [1], settings);
    await mysqlDriver.query(conn as never, 'SELECT ?', [2], { ...settings, execute: true });
    expect(calls).toEqual([
      { method: 'query', statement: { sql: 'SELECT ?', rowsAsArray: true, nestTables: '_' }, values: [1] },
      { method: 'execute', statement: { sql: 'SELECT ?', rowsAsArray: true, nestTables: '_' }, values: [2] },
    ]);
  });
});
