import { ConfigError } from '@noa/core';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMysqlPool, type MysqlPool } from '../../src/mysql.js';
import { createPgPool, type PgPool } from '../../src/pg.js';

/** The statement an attacker appends to `isolation`: it leaves a row behind if it ever runs. */
const injection = (table: string) => `serializable; INSERT INTO ${table} VALUES (1)`;

async function refusal(attempt: Promise<unknown>): Promise<ConfigError> {
  const error = await attempt.then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as ConfigError;
}

const pgUrl = serviceUrl('postgres');
const pgReachable = await isReachable('postgres');
if (!pgReachable) console.log(`skipped: no Postgres at ${pgUrl}`);

describe.skipIf(!pgReachable)('withTransaction options on Postgres', () => {
  const table = uniqueName('cp_tx_injected');
  let admin: PgPool;

  beforeAll(async () => {
    admin = createPgPool({ primary: pgUrl, pool: { max: 1 } });
    await admin.query(`CREATE TABLE ${table} (n int)`);
  });

  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS ${table}`);
    await admin?.close();
  });

  it('refuses SQL in `isolation` before anything is sent: the error names the field, nothing runs', async () => {
    const db = createPgPool({ primary: pgUrl });
    let ran = false;
    try {
      const error = await refusal(
        db.withTransaction(
          async () => {
            ran = true;
          },
          // Typed callers cannot write this; JavaScript callers and config files can.
          { isolation: injection(table) as 'serializable' },
        ),
      );
      expect(error.fields).toEqual(['isolation']);
      expect(ran).toBe(false);
      // Refused before a connection was even opened.
      expect(db.health().primary.stats.size).toBe(0);
    } finally {
      await db.close();
    }
    const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    expect(rows[0]!.n).toBe(0);
  });

  it('refuses a misspelt option instead of running READ COMMITTED', async () => {
    const db = createPgPool({ primary: pgUrl });
    try {
      const options = { isolaton: 'serializable' } as unknown as { isolation: 'serializable' };
      const error = await refusal(db.withTransaction(async () => {}, options));
      expect(error.fields).toEqual(['isolaton']);
      expect(db.health().primary.stats.size).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('still runs every isolation level, read-only, as the server reports it', async () => {
    const db = createPgPool({ primary: pgUrl, pool: { max: 1 } });
    try {
      for (const isolation of [
        'read uncommitted',
        'read committed',
        'repeatable read',
        'serializable',
      ] as const) {
        const seen = await db.withTransaction(
          async (tx) => {
            const { rows } = await tx.query<{ level: string; ro: string }>(
              "SELECT current_setting('transaction_isolation') AS level, current_setting('transaction_read_only') AS ro",
            );
            return rows[0]!;
          },
          { isolation, readOnly: true },
        );
        expect(seen).toEqual({ level: isolation, ro: 'on' });
      }
    } finally {
      await db.close();
    }
  });
});

const mysqlUrl = serviceUrl('mysql');
const mysqlReachable = await isReachable('mysql');
if (!mysqlReachable) console.log(`skipped: no MariaDB at ${mysqlUrl}`);

describe.skipIf(!mysqlReachable)('withTransaction options on MariaDB', () => {
  // Upper case: the old code upper-cased the whole isolation text, and MariaDB's table names are
  // case-sensitive here, so a lower-case name would have hidden that the injection ran.
  const table = uniqueName('cp_tx_injected').toUpperCase();
  let admin: MysqlPool;

  beforeAll(async () => {
    admin = createMysqlPool({ primary: mysqlUrl, pool: { max: 1 } });
    await admin.query(`CREATE TABLE ${table} (n int)`);
  });

  afterAll(async () => {
    await admin?.query(`DROP TABLE IF EXISTS ${table}`);
    await admin?.close();
  });

  it('refuses SQL in `isolation` before anything is sent, even with multipleStatements on', async () => {
    // mysql2 refuses multi-statement texts by default; an application that turned them on
    // (for migrations, say) would otherwise run the injected statement.
    const db = createMysqlPool({ primary: { uri: mysqlUrl, multipleStatements: true } });
    let ran = false;
    try {
      const error = await refusal(
        db.withTransaction(
          async () => {
            ran = true;
          },
          { isolation: injection(table) as 'serializable' },
        ),
      );
      expect(error.fields).toEqual(['isolation']);
      expect(ran).toBe(false);
      expect(db.health().primary.stats.size).toBe(0);
    } finally {
      await db.close();
    }
    const [rows] = await admin.query<RowDataPacket[]>(`SELECT count(*) AS n FROM ${table}`);
    expect(Number(rows[0]!.n)).toBe(0);
  });

  it('refuses a misspelt option', async () => {
    const db = createMysqlPool({ primary: mysqlUrl });
    try {
      const options = { isolaton: 'serializable', readonly: true } as unknown as { readOnly: boolean };
      const error = await refusal(db.withTransaction(async () => {}, options));
      expect(error.fields.sort()).toEqual(['isolaton', 'readonly']);
    } finally {
      await db.close();
    }
  });

  it('still runs every isolation level, read-only (a write inside is refused)', async () => {
    const db = createMysqlPool({ primary: mysqlUrl, pool: { max: 1 } });
    try {
      for (const isolation of [
        'read uncommitted',
        'read committed',
        'repeatable read',
        'serializable',
      ] as const) {
        const write = db.withTransaction(
          async (tx) => {
            await tx.query(`INSERT INTO ${table} VALUES (2)`);
          },
          { isolation, readOnly: true },
        );
        // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
        await expect(write).rejects.toMatchObject({ errno: 1792 });
      }
    } finally {
      await db.close();
    }
  });
});
