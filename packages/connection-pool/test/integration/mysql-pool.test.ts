import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool } from '../../src/mysql.js';
import { barrier, sleep } from './helpers/wait.js';

const url = serviceUrl('mysql');
const reachable = await isReachable('mysql');
if (!reachable) console.log(`skipped: no MariaDB at ${url}`);

function urlFor(database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

// The shared MariaDB has no replica, so the "replica" is a second database on the same
// server: `SELECT DATABASE()` then tells which pool a statement went through.
describe.skipIf(!reachable)('MysqlPool against MariaDB', () => {
  const primaryDb = uniqueName('cp_primary');
  const replicaDb = uniqueName('cp_replica');
  let admin: MysqlPool;
  let pool: MysqlPool;

  beforeAll(async () => {
    admin = createMysqlPool({ primary: url, pool: { max: 2 } });
    for (const database of [primaryDb, replicaDb]) {
      await admin.query(`CREATE DATABASE ${database}`);
      await admin.query(
        `CREATE TABLE ${database}.accounts (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB`,
      );
      await admin.query(`INSERT INTO ${database}.accounts VALUES (1, 0), (2, 0)`);
    }
    pool = createMysqlPool({
      name: 'mysql',
      primary: urlFor(primaryDb),
      replicas: [urlFor(replicaDb)],
      readYourWritesMs: 300,
      healthCheckIntervalMs: 200,
      pool: { max: 4 },
    });
  });

  afterAll(async () => {
    await pool?.close();
    for (const database of [primaryDb, replicaDb]) await admin?.query(`DROP DATABASE IF EXISTS ${database}`);
    await admin?.close();
  });

  const where = async (sql: string, values: unknown[] = [], options = {}) => {
    const [rows] = await pool.query<RowDataPacket[]>(sql, values, options);
    return rows[0]!.db === replicaDb ? 'replica' : 'primary';
  };

  it('routes reads to the replica and writes, locking reads and lock functions to the primary', async () => {
    expect(await where('SELECT DATABASE() AS db')).toBe('replica');
    expect(await where('SELECT DATABASE() AS db FROM accounts WHERE id = ?', [1])).toBe('replica');
    expect(await where('SELECT DATABASE() AS db FROM accounts WHERE id = 1 FOR UPDATE')).toBe('primary');
    expect(await where('SELECT DATABASE() AS db FROM accounts WHERE id = 1 LOCK IN SHARE MODE')).toBe(
      'primary',
    );
    expect(await where("SELECT GET_LOCK('noa_cp', 0) AS l, DATABASE() AS db")).toBe('primary');
    expect(await where("SELECT RELEASE_LOCK('noa_cp') AS l, DATABASE() AS db")).toBe('primary');
    // Named locks exist only on the server that took them: asked on a replica, every lock is free.
    expect(await where("SELECT IS_FREE_LOCK('noa_cp') AS l, DATABASE() AS db")).toBe('primary');
    expect(await where("SELECT IS_USED_LOCK('noa_cp') AS l, DATABASE() AS db")).toBe('primary');
    expect(await where('/* noa:primary */ SELECT DATABASE() AS db')).toBe('primary');
    const [header] = await pool.query('UPDATE accounts SET v = v WHERE id = ?', [1]);
    expect(header).toMatchObject({ affectedRows: 1 });
  });

  it('routes a multi-statement text (multipleStatements) to the primary if any part writes', async () => {
    const multi = createMysqlPool({
      primary: { uri: urlFor(primaryDb), multipleStatements: true },
      replicas: [{ uri: urlFor(replicaDb), multipleStatements: true }],
    });
    const whereMulti = async (sql: string) => {
      const [results] = await multi.query<RowDataPacket[][]>(sql);
      return results[0]![0]!.db === replicaDb ? 'replica' : 'primary';
    };
    try {
      expect(await whereMulti('SELECT DATABASE() AS db; SELECT 1')).toBe('replica');
      expect(await whereMulti('SELECT DATABASE() AS db; UPDATE accounts SET v = v WHERE id = 1')).toBe(
        'primary',
      );
      expect(await whereMulti("SELECT DATABASE() AS db; SELECT GET_LOCK('noa_multi', 0)")).toBe('primary');
    } finally {
      await multi.close();
    }
  });

  it('keeps a writing session on the primary for the read-your-writes window', async () => {
    await pool.query('UPDATE accounts SET v = v + 1 WHERE id = 2', [], { session: 'alice' });
    expect(await where('SELECT DATABASE() AS db', [], { session: 'alice' })).toBe('primary');
    expect(await where('SELECT DATABASE() AS db', [], { session: 'bob' })).toBe('replica');
    await sleep(400);
    expect(await where('SELECT DATABASE() AS db', [], { session: 'alice' })).toBe('replica');
    expect(pool.health().replicas[0]).toMatchObject({ healthy: true, lagMs: 0 });
  });

  it('commits, rolls back on throw, and retries a real deadlock (1213)', async () => {
    await pool.withTransaction(async (tx) => {
      await tx.query('UPDATE accounts SET v = 10 WHERE id = 1');
    });
    await expect(
      pool.withTransaction(async (tx) => {
        await tx.query('UPDATE accounts SET v = 99 WHERE id = 1');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const [rows] = await pool.query<RowDataPacket[]>('SELECT v FROM accounts WHERE id = 1', [], {
      target: 'primary',
    });
    expect(rows[0]!.v).toBe(10);

    const meet = barrier(2);
    const attempts: number[] = [];
    const cross = (first: number, second: number) =>
      pool.withTransaction(
        async (tx) => {
          attempts.push(tx.attempt);
          await tx.query('UPDATE accounts SET v = v + 1 WHERE id = ?', [first]);
          if (tx.attempt === 1) await meet();
          await tx.query('UPDATE accounts SET v = v + 1 WHERE id = ?', [second]);
        },
        { isolation: 'repeatable read' },
      );
    await Promise.all([cross(1, 2), cross(2, 1)]);
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    const [after] = await pool.query<RowDataPacket[]>('SELECT v FROM accounts WHERE id = 1', [], {
      target: 'primary',
    });
    expect(after[0]!.v).toBe(12);
  });

  it('retries a lock wait timeout (1205) by default: the whole function runs again', async () => {
    // Another connection holds row 2's lock until the first attempt has timed out waiting for it.
    const holder = await mysql.createConnection(urlFor(primaryDb));
    await holder.query('START TRANSACTION');
    await holder.query('SELECT v FROM accounts WHERE id = 2 FOR UPDATE');
    const attempts: number[] = [];
    try {
      await pool.withTransaction(async (tx) => {
        attempts.push(tx.attempt);
        if (tx.attempt === 2) await holder.query('ROLLBACK');
        // MariaDB's per-statement setting: a one-second wait, leaving no session state behind.
        await tx.query(
          'SET STATEMENT innodb_lock_wait_timeout = 1 FOR UPDATE accounts SET v = 500 WHERE id = 2',
        );
      });
    } finally {
      await holder.end();
    }
    expect(attempts).toEqual([1, 2]);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT v FROM accounts WHERE id = 2', [], {
      target: 'primary',
    });
    expect(rows[0]!.v).toBe(500);
  });

  it("query() is mysql2's query(): values are formatted client-side, lists and objects expanded, nothing prepared", async () => {
    const raw = await mysql.createConnection({ uri: urlFor(primaryDb) });
    const single = createMysqlPool({ primary: urlFor(primaryDb), pool: { max: 1 } });
    try {
      await raw.query('CREATE TABLE items (a int, b varchar(10))');
      const prepares = async () => {
        const [rows] = await single.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'");
        return Number(rows[0]!.Value);
      };
      const before = await prepares();
      // Each case: what mysql2's own query() answers, on the same database.
      const cases: [string, unknown[]][] = [
        ['SELECT 1 AS x FROM DUAL WHERE 2 IN (?)', [[1, 2, 3]]],
        ['SELECT ? / 3 AS third', [1]],
        ['SELECT ? AS big, ? AS nothing, ? AS yes', [10n, undefined, true]],
        ['SELECT ? AS stamp', [new Date(Date.UTC(2026, 0, 2, 3, 4, 5))]],
        ['SELECT ?? FROM (SELECT 7 AS a) AS t', ['a']],
        ['SELECT ? AS pair', [{ toSqlString: () => "CONCAT('a', 'b')" }]],
      ];
      for (const [sql, values] of cases) {
        const [ours] = await single.query(sql, values);
        const [theirs] = await raw.query(sql, values);
        expect(ours, sql).toEqual(theirs);
      }
      const [[hit]] = await single.query<RowDataPacket[]>('SELECT 1 AS x FROM DUAL WHERE 2 IN (?)', [
        [1, 2, 3],
      ]);
      expect(hit).toEqual({ x: 1 });
      await single.query('INSERT INTO items SET ?', [{ a: 1, b: 'one' }]);
      await single.query('INSERT INTO items (a, b) VALUES ?', [
        [
          [2, 'two'],
          [3, 'three'],
        ],
      ]);
      const [items] = await single.query<RowDataPacket[]>('SELECT a, b FROM items ORDER BY a');
      expect(items).toEqual([
        { a: 1, b: 'one' },
        { a: 2, b: 'two' },
        { a: 3, b: 'three' },
      ]);
      expect(await prepares()).toBe(before);
    } finally {
      await raw.query('DROP TABLE IF EXISTS items');
      await raw.end();
      await single.close();
    }
  });

  it('execute() runs prepared statements, routed like query(), in and out of transactions', async () => {
    const [rows] = await pool.execute<RowDataPacket[]>('SELECT DATABASE() AS db, ? + 1 AS n', [1]);
    expect(rows[0]).toEqual({ db: replicaDb, n: 2 });
    const [header] = await pool.execute('UPDATE accounts SET v = v WHERE id = ?', [1]);
    expect(header).toMatchObject({ affectedRows: 1 });
    const stats = await pool.withTransaction(async (tx) => {
      const status = async () => {
        const [status] = await tx.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'");
        return Number(status[0]!.Value);
      };
      const before = await status();
      const [inTx] = await tx.execute<RowDataPacket[]>('SELECT DATABASE() AS db, ? * 2 AS n', [21]);
      return { before, after: await status(), row: inTx[0] };
    });
    expect(stats.row).toEqual({ db: primaryDb, n: 42 });
    expect(stats.after - stats.before).toBe(1);
  });

  it('statementCacheSize 0: execute() closes each statement after it runs', async () => {
    const uncached = createMysqlPool({ primary: urlFor(primaryDb), statementCacheSize: 0, pool: { max: 1 } });
    try {
      await uncached.withTransaction(async (tx) => {
        const status = async () => {
          const [rows] = await tx.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_%'");
          return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
        };
        const before = await status();
        for (let index = 0; index < 2; index += 1) {
          const [rows] = await tx.execute<RowDataPacket[]>('SELECT ? AS n', [index]);
          expect(rows[0]!.n).toBe(index);
        }
        const after = await status();
        expect(after.Com_stmt_prepare! - before.Com_stmt_prepare!).toBe(2);
        expect(after.Com_stmt_close! - before.Com_stmt_close!).toBe(2);
      });
    } finally {
      await uncached.close();
    }
  });

  it('bounds the prepared statement cache of execute() per connection and closes evicted statements', async () => {
    const small = createMysqlPool({ primary: urlFor(primaryDb), statementCacheSize: 2, pool: { max: 1 } });
    try {
      await small.withTransaction(async (tx) => {
        const status = async () => {
          const [rows] = await tx.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_%'");
          return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
        };
        const before = await status();
        for (let index = 0; index < 5; index += 1) {
          const [rows] = await tx.execute<RowDataPacket[]>(`SELECT ? + ${index} AS n`, [1]);
          expect(Number(rows[0]!.n)).toBe(1 + index);
        }
        await tx.execute('SELECT ? + 4 AS n', [2]);
        const after = await status();
        expect(after.Com_stmt_prepare! - before.Com_stmt_prepare!).toBe(5);
        expect(after.Com_stmt_close! - before.Com_stmt_close!).toBe(3);
      });
    } finally {
      await small.close();
    }
  });
});
