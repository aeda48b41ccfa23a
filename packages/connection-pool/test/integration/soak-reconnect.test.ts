import type { EventEmitter } from 'node:events';
import { isReachable, serviceUrl, uniqueName, withMysqlDatabase } from '@noa/testkit';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createMysqlPool } from '../../src/mysql.js';
import { createPgPool } from '../../src/pg.js';
import { listeners, live, soak, timers } from './helpers/soak.js';
import { waitFor } from './helpers/wait.js';

/**
 * A long-running process in a few seconds: each pool runs a few thousand statements over many
 * cycles of its server killing every one of its connections (pg_terminate_backend, KILL, CLIENT
 * KILL), then what must not grow: listeners on a lent connection (pg-pool and mysql users report
 * an 'error' listener added per borrow or per reconnect), live driver connections (a pool that
 * drops a broken connection without ending it keeps it, its socket and buffers), live promises,
 * and timers after `close()`.
 */

const postgres = serviceUrl('postgres');
const pgReachable = await isReachable('postgres');
if (!pgReachable) console.log(`skipped: no Postgres at ${postgres}`);

describe.skipIf(!pgReachable)('PgPool over many connection kills (soak)', () => {
  it('keeps listeners, live clients and promises flat; close() leaves no timer', async () => {
    const app = uniqueName('cp_soak');
    const url = new URL(postgres);
    url.searchParams.set('application_name', app);
    const admin = new pg.Client({ connectionString: postgres });
    await admin.connect();
    const before = timers();
    const pool = createPgPool({
      primary: url.toString(),
      queryTimeoutMs: 5_000,
      pool: { max: 4, acquireTimeoutMs: 5_000, initialBackoffMs: 10, maxBackoffMs: 50 },
    });
    try {
      const work = (round: number) => [
        ...Array.from({ length: 150 }, (_, index) =>
          pool.query('SELECT $1::int AS n', [round * 1000 + index]),
        ),
        ...Array.from({ length: 10 }, () =>
          pool.withTransaction(async (tx) => {
            await tx.query('SELECT 1');
          }),
        ),
      ];
      const kill = () =>
        admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [
          app,
        ]);
      const healthy = () => pool.query('SELECT 1');
      await soak(1, work, kill, healthy);
      const conn = await pool.acquire();
      const baseListeners = listeners(conn);
      pool.release(conn);
      const baseClients = live(pg.Client);
      const basePromises = live(Promise);
      await soak(8, work, kill, healthy);
      const again = await pool.acquire();
      expect(listeners(again)).toEqual(baseListeners);
      pool.release(again);
      // 4 pooled, the admin: a client kept per kill would add 4 a round.
      expect(live(pg.Client)).toBeLessThanOrEqual(baseClients + 2);
      expect(live(Promise) - basePromises).toBeLessThan(300);
    } finally {
      await pool.close();
      await admin.end();
    }
    await waitFor(() => timers() <= before, 5_000, `timers back to ${before}`);
  }, 30_000);
});

const mariadb = serviceUrl('mysql');
const mysqlReachable = await isReachable('mysql');
if (!mysqlReachable) console.log(`skipped: no MariaDB at ${mariadb}`);

describe.skipIf(!mysqlReachable)('MysqlPool over many connection kills (soak)', () => {
  it('keeps listeners, live connections and promises flat; close() leaves no timer', async () => {
    const database = await withMysqlDatabase(mariadb, uniqueName('cp_soak'));
    const admin = await mysql.createConnection(mariadb);
    const before = timers();
    const pool = createMysqlPool({
      primary: database.url,
      queryTimeoutMs: 5_000,
      pool: { max: 4, acquireTimeoutMs: 5_000, initialBackoffMs: 10, maxBackoffMs: 50 },
    });
    try {
      const work = (round: number) => [
        ...Array.from({ length: 150 }, (_, index) => pool.query('SELECT ? AS n', [round * 1000 + index])),
        ...Array.from({ length: 10 }, () =>
          pool.withTransaction(async (tx) => {
            await tx.query('SELECT 1');
          }),
        ),
      ];
      const kill = async () => {
        const [rows] = await admin.query<mysql.RowDataPacket[]>(
          'SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
          [database.database],
        );
        for (const row of rows) await admin.query(`KILL ${Number(row.ID)}`).catch(() => {});
      };
      const healthy = () => pool.query('SELECT 1');
      await soak(1, work, kill, healthy);
      const conn = await pool.acquire();
      const baseListeners = listeners(conn as unknown as EventEmitter);
      pool.release(conn);
      const basePromises = live(Promise);
      await soak(8, work, kill, healthy);
      const again = await pool.acquire();
      expect(listeners(again as unknown as EventEmitter)).toEqual(baseListeners);
      pool.release(again);
      expect(live(Promise) - basePromises).toBeLessThan(300);
    } finally {
      await pool.close();
      await admin.end();
      await database.drop();
    }
    await waitFor(() => timers() <= before, 5_000, `timers back to ${before}`);
  }, 30_000);
});
