import { isReachable, serviceUrl } from '@noa/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgPool } from '../../src/pg.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

// pg 8 warns (and pg 9 refuses, says the warning) when a statement is sent on a client while
// another waits queued behind the one running: "Calling client.query() when the client is already
// executing a query". The pool itself must never queue two on a connection. It did: a connection
// given back inside a transaction has its ROLLBACK queued as it goes back, and the next
// borrower's statement, evicting an older one from the statement cache, sent its DEALLOCATE and
// then itself, both behind the ROLLBACK; and a borrower sending two statements at once queued
// them behind that ROLLBACK, or behind a DEALLOCATE the pool sent as the connection went back.
// A file of its own: Node warns once per process (so each case fails alone: `-t` to see it).
describe.skipIf(!reachable)('PgPool: statements queued on one connection', () => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => {
    if (warning.name === 'DeprecationWarning') warnings.push(warning.message);
  };
  beforeAll(() => {
    process.on('warning', onWarning);
  });
  afterAll(() => {
    process.off('warning', onWarning);
  });

  it('an eviction right after a rolled-back give-back queues no second statement', async () => {
    const db = createPgPool({ primary: url, statementCacheSize: 1, pool: { max: 1 } });
    const outside = new pg.Client({ connectionString: url });
    await outside.connect();
    try {
      // Statement A fills the one-entry cache.
      expect((await db.query<{ n: number }>('SELECT $1::int AS n', [1])).rows).toEqual([{ n: 1 }]);
      const client = await db.connect();
      await client.query('BEGIN');
      client.release(); // no COMMIT: rolled back as it goes back
      // Statement B evicts A, on the same connection (max: 1), once the ROLLBACK has answered.
      expect((await db.query<{ t: string }>('SELECT $1::text AS t', ['b'])).rows).toEqual([{ t: 'b' }]);
      // Let a warning emitted on process.nextTick arrive.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
      // And A was dropped on the server, B kept: one named statement of ours on the connection.
      const statements = await db.query<{ name: string }>(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'noa_s%' ORDER BY name",
      );
      expect(statements.rows.map((row) => row.name)).toEqual(['noa_s2']);
    } finally {
      await outside.end();
      await db.close();
    }
  });

  // The next borrower of a connection given back inside a transaction gets it only once its
  // ROLLBACK has settled: two statements it sends at once (Promise.all on a connect()ed client)
  // queued behind the ROLLBACK made the second one wait in pg's queue, which pg 8 warns of.
  it('a connection given back inside a transaction is lent on only once its ROLLBACK settled', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      const first = await db.connect();
      await first.query('BEGIN');
      await first.query("SET LOCAL transaction_isolation = 'serializable'");
      await first.query('SELECT pg_current_xact_id()'); // assigns the transaction an id
      first.release(); // no COMMIT: the application forgot it
      const next = await db.connect();
      // max: 1, the very connection (pg's Client has processID; @types/pg omits it).
      const backend = (client: object) => (client as { processID?: number }).processID;
      expect(backend(next)).toBe(backend(first));
      // Lent with its ROLLBACK answered: pg's own view of it is out of any transaction.
      expect(next.getTransactionStatus()).toBe('I');
      try {
        const [xact, isolation] = await Promise.all([
          next.query<{ xact: string | null }>('SELECT pg_current_xact_id_if_assigned() AS xact'),
          next.query<{ transaction_isolation: string }>('SHOW transaction_isolation'),
        ]);
        // Not in the aborted transaction: no id of its own, nor its SET LOCAL.
        expect(xact.rows).toEqual([{ xact: null }]);
        expect(isolation.rows).toEqual([{ transaction_isolation: 'read committed' }]);
      } finally {
        next.release();
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
    } finally {
      await db.close();
    }
  });

  // The same for the DEALLOCATE of a statement the cache evicted: sent as the statement that
  // evicted it settled, it still ran as the connection went to its next borrower.
  it('a connection is lent on only once the DEALLOCATE of an evicted statement settled', async () => {
    const db = createPgPool({ primary: url, statementCacheSize: 1, pool: { max: 1 } });
    try {
      await db.query('SELECT $1::int AS n', [1]);
      // Evicts the first: its DEALLOCATE goes out as this one settles.
      expect((await db.query<{ t: string }>('SELECT $1::text AS t', ['b'])).rows).toEqual([{ t: 'b' }]);
      const next = await db.connect();
      try {
        const [one, two] = await Promise.all([
          next.query<{ one: number }>('SELECT 1 AS one'),
          next.query<{ two: number }>('SELECT 2 AS two'),
        ]);
        expect([...one.rows, ...two.rows]).toEqual([{ one: 1 }, { two: 2 }]);
      } finally {
        next.release();
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
      const statements = await db.query<{ name: string }>(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'noa_s%' ORDER BY name",
      );
      expect(statements.rows.map((row) => row.name)).toEqual(['noa_s2']);
    } finally {
      await db.close();
    }
  });

  it('a statement that never parsed, evicted inside a transaction, does not abort it', async () => {
    // Its name is in the cache (named before it was sent) but not on the server: dropping it
    // there would fail, and inside a transaction that failure aborted the caller's transaction.
    const db = createPgPool({ primary: url, statementCacheSize: 1, pool: { max: 1 } });
    try {
      await expect(db.query('SELECT $1::no_such_type', [1])).rejects.toMatchObject({ code: '42704' });
      const rows = await db.withTransaction(async (tx) => {
        const first = await tx.query<{ n: number }>('SELECT $1::int AS n', [1]); // evicts the unparsed one
        const second = await tx.query<{ t: string }>('SELECT $1::text AS t', ['b']); // evicts the first
        return [...first.rows, ...second.rows];
      });
      expect(rows).toEqual([{ n: 1 }, { t: 'b' }]);
      // The parsed statement it evicted was dropped: only the last one is kept.
      const statements = await db.query<{ name: string }>(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'noa_s%' ORDER BY name",
      );
      expect(statements.rows.map((row) => row.name)).toEqual(['noa_s3']);
    } finally {
      await db.close();
    }
  });
});
