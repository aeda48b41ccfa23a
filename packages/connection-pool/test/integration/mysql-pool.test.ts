import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type { RowDataPacket } from 'mysql2/promise';
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
    expect(await where('/* noa:primary */ SELECT DATABASE() AS db')).toBe('primary');
    const [header] = await pool.query('UPDATE accounts SET v = v WHERE id = ?', [1]);
    expect(header).toMatchObject({ affectedRows: 1 });
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

  it('bounds the prepared statement cache per connection and closes evicted statements', async () => {
    const small = createMysqlPool({ primary: urlFor(primaryDb), statementCacheSize: 2, pool: { max: 1 } });
    try {
      await small.withTransaction(async (tx) => {
        const status = async () => {
          const [rows] = await tx.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_stmt_%'");
          return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
        };
        const before = await status();
        for (let index = 0; index < 5; index += 1) {
          const [rows] = await tx.query<RowDataPacket[]>(`SELECT ? + ${index} AS n`, [1]);
          expect(Number(rows[0]!.n)).toBe(1 + index);
        }
        await tx.query('SELECT ? + 4 AS n', [2]);
        const after = await status();
        expect(after.Com_stmt_prepare! - before.Com_stmt_prepare!).toBe(5);
        expect(after.Com_stmt_close! - before.Com_stmt_close!).toBe(3);
      });
    } finally {
      await small.close();
    }
  });
});
