import { ConfigError } from '@noa/core';
import { isReachable, serviceUrl } from '@noa/testkit';
import type { QueryOptions as Mysql2QueryOptions, RowDataPacket } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createMysqlPool, type MysqlQueryOptions } from '../../src/mysql.js';
import { routedQueries } from './routed-queries.js';

const url = serviceUrl('mysql');
const reachable = await isReachable('mysql');
if (!reachable) console.log(`skipped: no MariaDB at ${url}`);

// mysql2's options-object form of query() and execute(). The shared MariaDB serves as its own
// "replica" so that routing by the object's `sql` shows in the metrics.
describe.skipIf(!reachable)("MysqlPool#query and #execute in mysql2's options-object form", () => {
  const registry = new Registry();
  const db = createMysqlPool({
    name: 'mysql-forms',
    primary: url,
    replicas: [url],
    maxReplicaLagMs: 60_000,
    registry,
    pool: { max: 2 },
  });

  afterAll(() => db.close());

  const routed = () => routedQueries(registry);
  const delta = (before: Record<string, number>, after: Record<string, number>, target: string) =>
    (after[target] ?? 0) - (before[target] ?? 0);

  it('takes { sql, values, rowsAsArray, nestTables }, routed by its sql like a string', async () => {
    expectTypeOf<MysqlQueryOptions>().toMatchTypeOf<Mysql2QueryOptions>();
    const before = await routed();
    const [arrays] = await db.query<RowDataPacket[]>({
      sql: 'SELECT ? AS a, ? AS b',
      values: [1, 2],
      rowsAsArray: true,
    });
    expect(arrays).toEqual([[1, 2]]);
    const [nested] = await db.query<RowDataPacket[]>({ sql: 'SELECT 3 AS n', nestTables: '_' });
    expect(nested).toEqual([{ _n: 3 }]);
    // Values given beside the object win, as with mysql2.
    const [beside] = await db.query<RowDataPacket[]>({ sql: 'SELECT ? AS x', values: [1] }, [9]);
    expect(beside).toEqual([{ x: 9 }]);
    const [prepared] = await db.execute<RowDataPacket[]>({
      sql: 'SELECT ? + 1 AS x',
      values: [4],
      rowsAsArray: true,
    });
    expect(prepared).toEqual([[5]]);
    const middle = await routed();
    expect(delta(before, middle, 'replica0')).toBe(4);
    expect(delta(before, middle, 'primary')).toBe(0);
    await db.query({ sql: 'SELECT RELEASE_LOCK(?) AS r', values: ['mysql-forms-none'] });
    await db.execute({ sql: 'SELECT RELEASE_LOCK(?) AS r', values: ['mysql-forms-none'] });
    const after = await routed();
    expect(delta(middle, after, 'primary')).toBe(2);
    expect(delta(middle, after, 'replica0')).toBe(0);
  });

  it('takes the options object in a transaction', async () => {
    const rows = await db.withTransaction(async (tx) => {
      const [queried] = await tx.query<RowDataPacket[]>({
        sql: 'SELECT ? AS x',
        values: [6],
        rowsAsArray: true,
      });
      const [executed] = await tx.execute<RowDataPacket[]>({
        sql: 'SELECT ? AS y',
        values: [7],
        rowsAsArray: true,
      });
      return [queried, executed];
    });
    expect(rows).toEqual([[[6]], [[7]]]);
  });

  it("takes named-placeholder values (an object) with mysql2's namedPlaceholders, on the pool and in a transaction", async () => {
    // Per statement, in the options-object form.
    const [perQuery] = await db.query<RowDataPacket[]>(
      { sql: 'SELECT :a + :b AS n', namedPlaceholders: true },
      { a: 1, b: 2 },
    );
    expect(perQuery).toEqual([{ n: 3 }]);
    const [inObject] = await db.execute<RowDataPacket[]>({
      sql: 'SELECT :a * 2 AS n',
      values: { a: 4 },
      namedPlaceholders: true,
    });
    expect(inObject).toEqual([{ n: 8 }]);
    // Per connection, from the server's ConnectionOptions.
    const named = createMysqlPool({ name: 'mysql-named', primary: { uri: url, namedPlaceholders: true } });
    try {
      const values: Readonly<Record<string, unknown>> = { a: 5 };
      const [queried] = await named.query<RowDataPacket[]>('SELECT :a AS n', values);
      const [executed] = await named.execute<RowDataPacket[]>('SELECT :a + 1 AS n', { a: 5 });
      expect([queried, executed]).toEqual([[{ n: 5 }], [{ n: 6 }]]);
      const inTx = await named.withTransaction(async (tx) => {
        const [q] = await tx.query<RowDataPacket[]>('SELECT :a AS n', { a: 7 });
        const [e] = await tx.execute<RowDataPacket[]>('SELECT :a AS n', { a: 8 });
        return [q, e];
      });
      expect(inTx).toEqual([[{ n: 7 }], [{ n: 8 }]]);
    } finally {
      await named.close();
    }
  });

  it('refuses a timeout (it would destroy the connection), an unknown key and an object without sql', async () => {
    const refusal = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (error: unknown) => error,
      );
    const timeout = await refusal(db.query({ sql: 'SELECT 1', timeout: 10 } as never));
    expect(timeout).toBeInstanceOf(ConfigError);
    expect((timeout as ConfigError).fields).toEqual(['timeout']);
    const unknown = await refusal(db.execute({ sql: 'SELECT 1', rowsAsArrays: true } as never));
    expect((unknown as ConfigError).fields).toEqual(['rowsAsArrays']);
    const noSql = await refusal(db.query({ values: [1] } as never));
    expect((noSql as ConfigError).fields).toEqual(['sql']);
  });
});
