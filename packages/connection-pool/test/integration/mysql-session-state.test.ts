import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type { RowDataPacket } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { TransactionEndedError } from '../../src/index.js';
import { createMysqlPool, type MysqlTransaction } from '../../src/mysql.js';
import { useTagTable } from './helpers/tag-table.js';

const url = serviceUrl('mysql');
const reachable = await isReachable('mysql');
if (!reachable) console.log(`skipped: no MariaDB at ${url}`);

// A connection given back inside a transaction must not be lent on as it is: the next caller's
// writes would join a transaction nobody commits. max: 1, so the next caller gets that connection.
describe.skipIf(!reachable)('MysqlPool: a connection given back inside a transaction', () => {
  const { table, outside, committed } = useTagTable(url, 'cp_txstate');

  it.each(['START TRANSACTION', 'BEGIN'])(
    'a %s through query() does not swallow the next caller’s writes',
    async (begin) => {
      const db = createMysqlPool({ primary: url, pool: { max: 1 } });
      try {
        await db.query(begin);
        await db.query(`INSERT INTO ${table} (tag) VALUES ('other-caller')`);
        expect(await committed()).toEqual(['other-caller']);
      } finally {
        await outside().query(`DELETE FROM ${table}`);
        await db.close();
      }
    },
  );

  it('multi-statement texts (multipleStatements): one that leaves a transaction open is rolled back, one that commits is kept', async () => {
    const db = createMysqlPool({ primary: { uri: url, multipleStatements: true }, pool: { max: 1 } });
    try {
      // The transaction status is read from the last result header of the text.
      await db.query(`START TRANSACTION; INSERT INTO ${table} (tag) VALUES ('left-open'); SELECT 1`);
      await db.query(`INSERT INTO ${table} (tag) VALUES ('other-caller')`);
      expect(await committed()).toEqual(['other-caller']);
      await db.query(`START TRANSACTION; INSERT INTO ${table} (tag) VALUES ('committed'); COMMIT`);
      expect(await committed()).toEqual(['committed', 'other-caller']);
    } finally {
      await outside().query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it('SET autocommit = 0 stays with the connection (session state): a later write on it opens a transaction, rolled back when given back', async () => {
    const db = createMysqlPool({ primary: url, pool: { max: 1 } });
    try {
      await db.query('SET autocommit = 0');
      await db.query(`INSERT INTO ${table} (tag) VALUES ('never-committed')`);
      expect(await committed()).toEqual([]);
      // Given back with release(conn, true), the connection is closed and the next one is fresh.
      const conn = await db.acquire();
      db.release(conn, true);
      await db.query(`INSERT INTO ${table} (tag) VALUES ('fresh-connection')`);
      expect(await committed()).toEqual(['fresh-connection']);
    } finally {
      await outside().query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  // The next caller gets the connection only once its give-back ROLLBACK has settled, and a
  // connection whose ROLLBACK fails is closed. Lent at once, the next caller's write was queued
  // behind a ROLLBACK the server refused, inside the transaction left open, and lost with it.
  it('a connection whose give-back ROLLBACK fails is closed, not lent on: the next caller’s write is committed', async () => {
    const db = createMysqlPool({ primary: url, pool: { max: 1 } });
    const xid = uniqueName('cp_xa');
    try {
      const [[before]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      // An XA transaction: the server says "in a transaction", and refuses a plain ROLLBACK
      // (XAER_RMFAIL) while it is active.
      await db.query(`XA START '${xid}'`);
      await db.query(`INSERT INTO ${table} (tag) VALUES ('next-caller')`);
      expect(await committed()).toEqual(['next-caller']);
      const [[after]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      expect(after?.id).not.toBe(before?.id); // closed, and a new connection opened
      expect(db.health().primary.stats.size).toBe(1);
    } finally {
      await outside().query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it('a connection its borrower ended and then released is closed, not lent: the next query runs on a new connection', async () => {
    const db = createMysqlPool({ primary: url, pool: { max: 1 } });
    try {
      const conn = await db.acquire();
      const ended = conn.end();
      db.release(conn);
      const [rows] = await db.query<RowDataPacket[]>('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
      await ended;
      expect(db.health().primary.healthy).toBe(true);
    } finally {
      await db.close();
    }
  });

  it('a transaction ended by COMMIT through query() leaves nothing to roll back', async () => {
    const db = createMysqlPool({ primary: url, pool: { max: 1 } });
    try {
      const conn = await db.acquire();
      db.release(conn);
      await db.withTransaction(async (tx) => {
        await tx.query(`INSERT INTO ${table} (tag) VALUES ('in-tx')`);
      });
      await db.query(`INSERT INTO ${table} (tag) VALUES ('plain')`);
      expect(await committed()).toEqual(['in-tx', 'plain']);
    } finally {
      await outside().query(`DELETE FROM ${table}`);
      await db.close();
    }
  });

  it('a transaction handle used after its withTransaction ended is refused (query and execute)', async () => {
    const db = createMysqlPool({ primary: url, pool: { max: 1 } });
    try {
      let stale: MysqlTransaction | undefined;
      await db.withTransaction(async (tx) => {
        stale = tx;
      });
      await expect(stale!.query(`INSERT INTO ${table} (tag) VALUES ('stale')`)).rejects.toBeInstanceOf(
        TransactionEndedError,
      );
      await expect(stale!.execute('SELECT ?', [1])).rejects.toBeInstanceOf(TransactionEndedError);
      expect(await committed()).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
