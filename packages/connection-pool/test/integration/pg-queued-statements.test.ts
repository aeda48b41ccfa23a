import { isReachable, serviceUrl } from '@noa/testkit';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
// Node prints that warning once per process, so each case also counts pg's own condition for it
// (pg 8 client.js: a query() while `_queryQueue` already holds one, outside pipeline mode) by
// wrapping Client#query: a case catches its own queueing whatever the cases before it did.
describe.skipIf(!reachable)('PgPool: statements queued on one connection', () => {
  const warnings: string[] = [];
  const queued: string[] = [];
  const onWarning = (warning: Error) => {
    if (warning.name === 'DeprecationWarning') warnings.push(warning.message);
  };
  type Internals = { _queryQueue?: unknown[]; pipeline?: boolean };
  const query = pg.Client.prototype.query;
  beforeAll(() => {
    process.on('warning', onWarning);
    pg.Client.prototype.query = function (this: pg.Client & Internals, ...args: unknown[]) {
      if ((this._queryQueue?.length ?? 0) > 0 && this.pipeline !== true) {
        const [first] = args;
        queued.push(typeof first === 'string' ? first : String((first as { text?: unknown })?.text));
      }
      return (query as (...rest: unknown[]) => unknown).apply(this, args);
    } as typeof query;
  });
  beforeEach(() => {
    queued.length = 0;
  });
  afterAll(() => {
    process.off('warning', onWarning);
    pg.Client.prototype.query = query;
  });

  /** No statement was queued behind another on a connection, by pg's count or its warning. */
  async function expectNoneQueued(): Promise<void> {
    // Let a warning emitted on process.nextTick arrive.
    await new Promise((resolve) => setImmediate(resolve));
    expect(queued).toEqual([]);
    expect(warnings.filter((message) => message.includes('already executing a query'))).toEqual([]);
  }

  /** Our named statements prepared on the pool's one connection. */
  async function ourStatements(db: ReturnType<typeof createPgPool>): Promise<string[]> {
    const statements = await db.query<{ name: string }>(
      "SELECT name FROM pg_prepared_statements WHERE name LIKE 'noa_s%' ORDER BY name",
    );
    return statements.rows.map((row) => row.name);
  }

  it('an eviction right after a rolled-back give-back queues no second statement', async () => {
    const db = createPgPool({ primary: url, statementCacheSize: 1, pool: { max: 1 } });
    try {
      // Statement A fills the one-entry cache.
      expect((await db.query<{ n: number }>('SELECT $1::int AS n', [1])).rows).toEqual([{ n: 1 }]);
      const client = await db.connect();
      await client.query('BEGIN');
      client.release(); // no COMMIT: rolled back as it goes back
      // Statement B evicts A, on the same connection (max: 1), once the ROLLBACK has answered.
      expect((await db.query<{ t: string }>('SELECT $1::text AS t', ['b'])).rows).toEqual([{ t: 'b' }]);
      await expectNoneQueued();
      // And A was dropped on the server, B kept: one named statement of ours on the connection.
      expect(await ourStatements(db)).toEqual(['noa_s2']);
    } finally {
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
      await expectNoneQueued();
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
      await expectNoneQueued();
      expect(await ourStatements(db)).toEqual(['noa_s2']);
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
      expect(await ourStatements(db)).toEqual(['noa_s3']);
    } finally {
      await db.close();
    }
  });
});
