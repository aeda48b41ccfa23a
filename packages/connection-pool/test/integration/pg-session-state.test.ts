import { isReachable, recordingLogger, serviceUrl, uniqueName } from '@noa/testkit';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TransactionEndedError } from '../../src/index.js';
import { createPgPool, type PgTransaction } from '../../src/pg.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

// A connection given back inside a transaction must not be lent on as it is: the next borrower's
// statements would run in a transaction it never opened (never committed), or fail as aborted.
// max: 1, so the next borrower gets the very connection the previous one gave back.
describe.skipIf(!reachable)('PgPool: a connection given back inside a transaction', () => {
  const table = uniqueName('cp_txstate');
  const outside = new pg.Client({ connectionString: url });

  /** The rows another connection sees: only committed ones. */
  const committed = async () =>
    (await outside.query<{ tag: string }>(`SELECT tag FROM ${table} ORDER BY tag`)).rows.map(
      (row) => row.tag,
    );

  beforeAll(async () => {
    await outside.connect();
    await outside.query(`CREATE TABLE ${table} (tag text NOT NULL)`);
  });

  afterAll(async () => {
    await outside.query(`DROP TABLE IF EXISTS ${table}`);
    await outside.end();
  });

  it('connect()ed client released after an error in its transaction: the next query is not refused as aborted', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      const client = await db.connect();
      await client.query('BEGIN');
      await expect(client.query('SELECT 1/0')).rejects.toThrow(/division by zero/);
      client.release(); // no ROLLBACK: the application's error path forgot it
      const answer = await db.query<{ one: number }>('SELECT 1 AS one');
      expect(answer.rows).toEqual([{ one: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('connect()ed client released with its transaction open: its write is rolled back, the next borrower’s write is committed', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      const client = await db.connect();
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${table} (tag) VALUES ('a-forgotten')`);
      client.release(); // no COMMIT
      await db.query(`INSERT INTO ${table} (tag) VALUES ('b-next')`);
      expect(await committed()).toEqual(['b-next']);
      expect(db.health().primary.stats.size).toBe(1); // rolled back and reused, not reconnected
    } finally {
      await outside.query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it('a give-back that needed a ROLLBACK is counted (released_in_transaction_total) and logged at debug; a clean one is not', async () => {
    const registry = new Registry();
    const logger = recordingLogger();
    const name = uniqueName('cp_giveback');
    const db = createPgPool({ name, primary: url, pool: { max: 1 }, registry, logger });
    try {
      const clean = await db.connect();
      await clean.query('SELECT 1');
      clean.release();
      await db.withTransaction(async (tx) => tx.query('SELECT 1'));
      const forgot = await db.connect();
      await forgot.query('BEGIN');
      forgot.release(); // no COMMIT
      await db.query('SELECT 1'); // lent after the ROLLBACK settled
      const counted = await registry
        .getSingleMetric('noa_connection_pool_released_in_transaction_total')!
        .get();
      expect(counted.values).toEqual([
        expect.objectContaining({ labels: { pool: `${name}:primary` }, value: 1 }),
      ]);
      expect(logger.messages('debug')).toContain(
        'connection given back inside a transaction: rolling it back',
      );
    } finally {
      await db.close();
    }
  });

  // pg.Pool closes a client given back ended (`_ending`) or no longer queryable, as this does.
  it('a connect()ed client its borrower ended and then released is closed, not lent: the next query runs on a new connection', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      const client = await db.connect();
      const ended = client.end();
      client.release();
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
      await ended;
      expect(db.health().primary.healthy).toBe(true);
    } finally {
      await db.close();
    }
  });

  it('a BEGIN through query() does not swallow the next caller’s writes into a transaction nobody commits', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      await db.query('BEGIN');
      await db.query(`INSERT INTO ${table} (tag) VALUES ('c-other-caller')`);
      expect(await committed()).toEqual(['c-other-caller']);
    } finally {
      await outside.query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it('a transaction handle used after its withTransaction ended is refused, not run on a connection lent to another caller', async () => {
    const db = createPgPool({ primary: url, pool: { max: 1 } });
    try {
      let stale: PgTransaction | undefined;
      await db.withTransaction(async (tx) => {
        stale = tx;
        await tx.query('SELECT 1');
      });
      // The same connection (max: 1), now in another caller's transaction.
      await db.withTransaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (tag) VALUES ('d-mine')`);
        await expect(stale!.query(`INSERT INTO ${table} (tag) VALUES ('e-stale')`)).rejects.toMatchObject({
          code: 'NOA_POOL_TRANSACTION_ENDED',
        });
        await expect(stale!.query({ text: 'SELECT 1' })).rejects.toBeInstanceOf(TransactionEndedError);
      });
      await expect(stale!.query('SELECT 1')).rejects.toBeInstanceOf(TransactionEndedError);
      expect(await committed()).toEqual(['d-mine']);
    } finally {
      await outside.query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it.each(['DEALLOCATE ALL', 'DISCARD ALL'])(
    'after a %s through query(), parameterized statements (named from the statement cache) still run',
    async (reset) => {
      const db = createPgPool({ primary: url, pool: { max: 1 } });
      try {
        expect((await db.query<{ n: number }>('SELECT $1::int AS n', [1])).rows).toEqual([{ n: 1 }]);
        await db.query(reset);
        expect((await db.query<{ n: number }>('SELECT $1::int AS n', [2])).rows).toEqual([{ n: 2 }]);
        expect((await db.query<{ n: number }>('SELECT $1::int AS n', [3])).rows).toEqual([{ n: 3 }]);
      } finally {
        await db.close();
      }
    },
  );
});

// README "Transactions and prepared statements": with the cache on, a parameterized query() is a
// named statement kept on its connection; `statementCacheSize: 0` (PgBouncer in transaction
// mode) sends unnamed ones, so nothing stays prepared on the server.
describe.skipIf(!reachable)('PgPool: the prepared statement cache on the shared Postgres', () => {
  /** The statements prepared on the connection of a pool of one. */
  const preparedOn = async (db: ReturnType<typeof createPgPool>) => {
    const client = await db.connect();
    try {
      return (await client.query<{ name: string }>('SELECT name FROM pg_prepared_statements')).rows.map(
        (row) => row.name,
      );
    } finally {
      client.release();
    }
  };

  it.each([
    [100, 1],
    [0, 0],
  ])(
    'statementCacheSize %i: %i statement(s) left prepared after the same query three times',
    async (size, count) => {
      const db = createPgPool({ primary: url, statementCacheSize: size, pool: { max: 1 } });
      try {
        for (let round = 0; round < 3; round += 1) {
          expect((await db.query<{ n: number }>('SELECT $1::int AS n', [round])).rows[0]!.n).toBe(round);
        }
        const names = await preparedOn(db);
        expect(names).toHaveLength(count);
        for (const name of names) expect(name).toMatch(/^noa_s/);
      } finally {
        await db.close();
      }
    },
  );
});
