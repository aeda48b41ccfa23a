import { ConfigError } from '@noa/core';
import { isReachable, serviceUrl } from '@noa/testkit';
import type { RowDataPacket } from 'mysql2/promise';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createMysqlPool } from '../../src/mysql.js';
import { giveBackCounters } from './helpers/metrics.js';

const url = serviceUrl('mysql');
const reachable = await isReachable('mysql');
if (!reachable) console.log(`skipped: no MySQL/MariaDB at ${url}`);

interface Row extends RowDataPacket {
  id: number;
  trx: number;
}

// mysql2's `pool.getConnection()` → `conn.release()`, the form code written against mysql2's
// pool uses; unlike mysql2's pool, a transaction the borrower left open is rolled back before
// anyone else gets the connection.
describe.skipIf(!reachable)("MysqlPool#getConnection(): mysql2's pool form", () => {
  const registry = new Registry();
  const db = createMysqlPool({ name: 'get-connection', primary: url, pool: { max: 1 }, registry });

  afterAll(async () => {
    await db.close();
  });

  async function connectionId(): Promise<number> {
    const conn = await db.getConnection();
    const [rows] = await conn.query<Row[]>('SELECT CONNECTION_ID() AS id');
    conn.release();
    return rows[0]!.id;
  }

  it('lends a connection with release() that gives it back open; a second release() is a no-op', async () => {
    const conn = await db.getConnection();
    const [rows] = await conn.query<Row[]>('SELECT CONNECTION_ID() AS id');
    expect(db.health().primary.stats.active).toBe(1);
    conn.release();
    conn.release();
    expect(db.health().primary.stats.active).toBe(0);
    expect(await connectionId()).toBe(rows[0]!.id);
    // A later acquire() borrower gets mysql2's own connection, with none of the view's methods.
    const plain = await db.acquire();
    expect(plain).not.toBe(conn);
    expect(Object.hasOwn(plain, 'release')).toBe(false);
    db.release(plain);
    // pool.release(view) gives a getConnection() connection back too.
    const viaPool = await db.getConnection();
    db.release(viaPool);
    expect(db.health().primary.stats.active).toBe(0);
  });

  it('release(error) and destroy() close it (destroy() frees its slot, as mysql2 pool connections do)', async () => {
    const first = await connectionId();
    const conn = await db.getConnection();
    conn.release(new Error('broken'));
    const second = await connectionId();
    expect(second).not.toBe(first);
    const again = await db.getConnection();
    again.destroy();
    // With max 1, the slot must be free again, on a new connection.
    expect(await connectionId()).not.toBe(second);
  });

  it('rolls back a transaction the borrower opened with beginTransaction() and left open', async () => {
    const conn = await db.getConnection();
    await conn.beginTransaction();
    const [rows] = await conn.query<Row[]>('SELECT @@in_transaction AS trx');
    expect(rows[0]!.trx).toBe(1);
    conn.release();
    const next = await db.getConnection();
    const [after] = await next.query<Row[]>('SELECT @@in_transaction AS trx');
    expect(after[0]!.trx).toBe(0);
    next.release();
  });

  it('rolls back one opened with START TRANSACTION through query() or execute(), not one committed', async () => {
    for (const viaExecute of [false, true]) {
      const conn = await db.getConnection();
      await (viaExecute ? conn.execute('START TRANSACTION') : conn.query('START TRANSACTION'));
      conn.release();
      const next = await db.getConnection();
      const [after] = await next.query<Row[]>('SELECT @@in_transaction AS trx');
      expect(after[0]!.trx).toBe(0);
      next.release();
    }
    const before = (await giveBackCounters(registry, 'get-connection:primary')).releasedInTransaction;
    const conn = await db.getConnection();
    await conn.beginTransaction();
    await conn.commit();
    await conn.execute('SELECT 1');
    conn.release();
    expect((await giveBackCounters(registry, 'get-connection:primary')).releasedInTransaction).toBe(before);
  });

  it('checks its options like connect(): an unknown key or a bad role is a ConfigError naming it', async () => {
    await expect(db.getConnection({ role: 'leader' as never })).rejects.toThrow(ConfigError);
    await expect(db.getConnection({ rolle: 'replica' } as never)).rejects.toThrow(
      /getConnection.*rolle|rolle/,
    );
    expect(db.health().primary.stats.active).toBe(0);
  });
});
