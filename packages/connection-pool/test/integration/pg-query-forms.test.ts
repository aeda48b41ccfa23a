import { ConfigError } from '@noa/core';
import { isReachable, serviceUrl } from '@noa/testkit';
import type { QueryArrayResult, QueryResult } from 'pg';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { createPgPool } from '../../src/pg.js';
import { routedQueries } from './routed-queries.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

// pg.Pool's other query() forms: a callback, and a QueryConfig object. The shared Postgres
// serves as its own "replica" so that routing by the config's text shows in the metrics.
describe.skipIf(!reachable)("PgPool#query in pg.Pool's other forms", () => {
  const registry = new Registry();
  const db = createPgPool({
    name: 'forms',
    primary: url,
    replicas: [url],
    maxReplicaLagMs: 60_000,
    registry,
    pool: { max: 2 },
  });

  afterAll(() => db.close());

  const routed = () => routedQueries(registry);

  it('calls a callback as pg.Pool does: (undefined, result) or (error), and returns undefined', async () => {
    const answer = (run: (callback: (error: Error, result: QueryResult) => void) => unknown) =>
      new Promise<{ returned: unknown; error: Error | undefined; result: QueryResult | undefined }>(
        (resolve) => {
          const returned = run((error, result) => resolve({ returned, error, result }));
        },
      );
    const plain = await answer((callback) => db.query('SELECT 1 AS x', callback));
    expect(plain.returned).toBeUndefined();
    expect(plain.error).toBeUndefined();
    expect(plain.result?.rows).toEqual([{ x: 1 }]);
    const withValues = await answer((callback) => db.query('SELECT $1::int AS x', [2], callback));
    expect(withValues.result?.rows).toEqual([{ x: 2 }]);
    const config = await answer((callback) =>
      db.query({ text: 'SELECT $1::int AS x', values: [3] }, callback),
    );
    expect(config.result?.rows).toEqual([{ x: 3 }]);
    const failed = await answer((callback) => db.query('SELEC 1', callback));
    expect(failed.error).toMatchObject({ code: '42601' });
    expect(failed.result).toBeUndefined();
  });

  it('takes a QueryConfig ({ text, values, rowMode, types }), routed by its text, typed like pg.Pool', async () => {
    const before = await routed();
    const rows = await db.query<{ x: number }>({ text: 'SELECT $1::int AS x', values: [5] });
    expectTypeOf(rows).toEqualTypeOf<QueryResult<{ x: number }>>();
    expect(rows.rows).toEqual([{ x: 5 }]);
    const arrays = await db.query<[number, number]>({
      text: 'SELECT 1 AS a, $1::int AS b',
      values: [2],
      rowMode: 'array',
    });
    expectTypeOf(arrays).toEqualTypeOf<QueryArrayResult<[number, number]>>();
    expect(arrays.rows).toEqual([[1, 2]]);
    const asText = await db.query({
      text: 'SELECT 7::int AS n',
      types: { getTypeParser: () => (value: string) => `text ${value}` },
    });
    expect(asText.rows).toEqual([{ n: 'text 7' }]);
    // Values given beside the config win, as with pg.
    expect((await db.query({ text: 'SELECT $1::int AS x', values: [1] }, [9])).rows).toEqual([{ x: 9 }]);
    const after = await routed();
    expect((after.replica0 ?? 0) - (before.replica0 ?? 0)).toBe(4);
    await db.query({ text: 'SELECT nextval($1)', values: ['forms_missing_seq'] }).catch(() => {});
    expect((await routed()).primary! - (after.primary ?? 0)).toBe(1);
  });

  it('takes a QueryConfig in a transaction', async () => {
    const result = await db.withTransaction(async (tx) => {
      const config = await tx.query({ text: 'SELECT $1::int AS x', values: [4], rowMode: 'array' });
      expectTypeOf(config).toEqualTypeOf<QueryArrayResult<unknown[]>>();
      return config.rows;
    });
    expect(result).toEqual([[4]]);
  });

  it('refuses what would lose its result: a callback in a transaction, a Submittable, a config callback, a config without text', async () => {
    const refusal = (promise: unknown) =>
      (promise as Promise<unknown>).then(
        () => undefined,
        (error: unknown) => error,
      );
    const inTx = await db.withTransaction(async (tx) => refusal(tx.query('SELECT 1', (() => {}) as never)));
    expect(inTx).toBeInstanceOf(ConfigError);
    expect((inTx as ConfigError).fields).toEqual(['callback']);
    const submittable = await refusal(db.query({ text: 'SELECT 1', submit: () => {} } as never));
    expect((submittable as ConfigError).fields).toEqual(['submit']);
    const configCallback = await refusal(db.query({ text: 'SELECT 1', callback: () => {} } as never));
    expect((configCallback as ConfigError).fields).toEqual(['callback']);
    const noText = await refusal(db.query({ values: [1] } as never));
    expect((noText as ConfigError).fields).toEqual(['text']);
  });
});
