import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError } from '../../src/index.js';
import { createMysqlPool } from '../../src/mysql.js';
import { giveBackCounters } from './helpers/metrics.js';
import { useTagTable } from './helpers/tag-table.js';
import { waitFor } from './helpers/wait.js';

const url = serviceUrl('mysql');
const reachable = await isReachable('mysql');
if (!reachable) console.log(`skipped: no MariaDB at ${url}`);

const idOf = async (conn: mysql.Connection) =>
  (await conn.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id'))[0][0]!.id as number;

/** Resolves once mysql2 has seen the connection fail or end. */
const lost = (conn: mysql.Connection) =>
  new Promise<void>((resolve) => {
    conn.once('error', () => resolve());
    conn.once('end', () => resolve());
  });

/** max_statement_time's error (mysql2 has no name for it: errno only). */
const STATEMENT_TIMEOUT = 1969;

// The MariaDB side of pg-lost-in-transaction.test.ts: a connection its server ended while a
// borrower held it inside a transaction (KILL CONNECTION from another session, the server's
// idle_transaction_timeout), and a statement max_statement_time interrupted inside one.
describe.skipIf(!reachable)(
  'MysqlPool: a connection its server ended while it was borrowed inside a transaction',
  () => {
    const { table, outside, committed } = useTagTable(url, 'cp_lost');

    const connectionGone = async (id: number) => {
      const [rows] = await outside().query<RowDataPacket[]>(
        'SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?',
        [id],
      );
      return rows.length === 0;
    };

    it.each(['KILL CONNECTION', 'idle_transaction_timeout'])(
      '%s while an acquire()d connection was inside a transaction: given back, it is closed, the next caller gets a new connection',
      async (cause) => {
        const registry = new Registry();
        const name = uniqueName('cp_lost');
        const db = createMysqlPool({ name, primary: url, pool: { max: 1 }, registry });
        try {
          const conn = await db.acquire();
          const id = await idOf(conn);
          const noticed = lost(conn);
          if (cause === 'idle_transaction_timeout')
            await conn.query('SET SESSION idle_transaction_timeout = 1');
          await conn.query('START TRANSACTION');
          await conn.query(`INSERT INTO ${table} (tag) VALUES ('lost-write')`);
          if (cause === 'KILL CONNECTION') await outside().query(`KILL CONNECTION ${id}`);
          await waitFor(() => connectionGone(id));
          await noticed;
          db.release(conn);

          const [[row]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
          expect(row?.id).not.toBe(id);
          await db.query(`INSERT INTO ${table} (tag) VALUES ('next-caller')`);
          expect(await committed()).toEqual(['next-caller']);
          expect(db.health().primary.healthy).toBe(true);
          expect(db.health().primary.stats.size).toBe(1);
          const pool = `${name}:primary`;
          expect(await giveBackCounters(registry, pool)).toMatchObject({ destroyed: 1, resetErrors: 0 });
        } finally {
          await outside().query(`DELETE FROM ${table}`);
          await db.close();
        }
      },
    );

    it('KILL CONNECTION inside withTransaction: the transaction fails with BackendUnavailableError, the next caller gets a new connection', async () => {
      const db = createMysqlPool({ primary: url, pool: { max: 1 } });
      try {
        let id = 0;
        await expect(
          db.withTransaction(async (tx) => {
            id = await idOf(tx.connection);
            const noticed = lost(tx.connection);
            await tx.query(`INSERT INTO ${table} (tag) VALUES ('lost-write')`);
            await outside().query(`KILL CONNECTION ${id}`);
            await noticed;
            await tx.query(`INSERT INTO ${table} (tag) VALUES ('after-kill')`);
          }),
        ).rejects.toBeInstanceOf(BackendUnavailableError);
        const [[row]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
        expect(row?.id).not.toBe(id);
        await db.query(`INSERT INTO ${table} (tag) VALUES ('next-caller')`);
        expect(await committed()).toEqual(['next-caller']);
        expect(db.health().primary.stats.size).toBe(1);
      } finally {
        await outside().query(`DELETE FROM ${table}`);
        await db.close();
      }
    });

    it('a statement max_statement_time interrupted inside withTransaction: rolled back, the same connection is lent again, outside any transaction', async () => {
      const db = createMysqlPool({ primary: url, pool: { max: 1 } });
      try {
        let id = 0;
        await expect(
          db.withTransaction(async (tx) => {
            id = await idOf(tx.connection);
            await tx.query(`INSERT INTO ${table} (tag) VALUES ('rolled-back')`);
            await tx.query('SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(30)');
          }),
        ).rejects.toMatchObject({ errno: STATEMENT_TIMEOUT });
        const [[row]] = await db.query<RowDataPacket[]>(
          'SELECT CONNECTION_ID() AS id, @@in_transaction AS open',
        );
        expect(row).toEqual({ id, open: 0 });
        await db.query(`INSERT INTO ${table} (tag) VALUES ('next-caller')`);
        expect(await committed()).toEqual(['next-caller']);
      } finally {
        await outside().query(`DELETE FROM ${table}`);
        await db.close();
      }
    });

    // multipleStatements: the transaction status is read from the last result header of a text,
    // and a text that fails part-way has none: its START TRANSACTION and INSERT ran, the statement
    // after them did not.
    it.each([
      [
        'a max_statement_time interruption',
        'SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(30)',
        STATEMENT_TIMEOUT,
      ],
      ['a missing table', 'SELECT * FROM cp_lost_no_such_table', 1146],
    ])(
      'a multi-statement text whose transaction %s left open: rolled back at the give-back, the next caller’s write is committed',
      async (_, failing, errno) => {
        const registry = new Registry();
        const name = uniqueName('cp_lost');
        const db = createMysqlPool({
          name,
          primary: { uri: url, multipleStatements: true },
          pool: { max: 1 },
          registry,
        });
        try {
          const [[before]] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
          await expect(
            db.query(`START TRANSACTION; INSERT INTO ${table} (tag) VALUES ('left-open'); ${failing}`),
          ).rejects.toMatchObject({ errno });
          await db.query(`INSERT INTO ${table} (tag) VALUES ('next-caller')`);
          expect(await committed()).toEqual(['next-caller']);
          const [[after]] = await db.query<RowDataPacket[]>(
            'SELECT CONNECTION_ID() AS id, @@in_transaction AS open',
          );
          expect(after).toEqual({ id: before?.id, open: 0 }); // rolled back and reused
          const pool = `${name}:primary`;
          expect(await giveBackCounters(registry, pool)).toMatchObject({ releasedInTransaction: 1 });
        } finally {
          await outside().query(`DELETE FROM ${table}`);
          await db.close();
        }
      },
    );
  },
);
