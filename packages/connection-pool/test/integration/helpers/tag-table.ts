import { uniqueName } from '@noa/testkit';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll } from 'vitest';

/**
 * A MariaDB table of tags for one test file, created before its tests and dropped after, with a
 * connection of its own outside the pool under test: `committed()` lists the tags that
 * connection sees, i.e. the committed ones. Call it inside the file's `describe`.
 */
export function useTagTable(
  url: string,
  prefix: string,
): { table: string; outside: () => mysql.Connection; committed: () => Promise<string[]> } {
  const table = uniqueName(prefix);
  let connection: mysql.Connection | undefined;
  const outside = (): mysql.Connection => {
    if (connection === undefined) throw new Error('useTagTable: no connection before beforeAll');
    return connection;
  };
  beforeAll(async () => {
    connection = await mysql.createConnection(url);
    await connection.query(`CREATE TABLE ${table} (tag varchar(40) NOT NULL) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await connection?.query(`DROP TABLE IF EXISTS ${table}`);
    await connection?.end();
  });
  const committed = async (): Promise<string[]> => {
    const [rows] = await outside().query<RowDataPacket[]>(`SELECT tag FROM ${table} ORDER BY tag`);
    return rows.map((row) => row.tag as string);
  };
  return { table, outside, committed };
}
