import { serviceUrl } from './env.js';
import { uniqueName } from './namespace.js';

/** A MariaDB/MySQL database created for one test. */
export interface MysqlDatabase {
  /** The database name. */
  readonly database: string;
  /** The server URL with its path set to the database. */
  readonly url: string;
  /** `DROP DATABASE IF EXISTS`. */
  drop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `url` with its path (the database) replaced by `database`. */
export function withDatabasePath(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** Back-quotes a MySQL identifier. */
export function quoteMysqlIdentifier(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

async function mysqlExec(url: string, statement: string): Promise<void> {
  const mysql = await import('mysql2/promise');
  const connection = await mysql.createConnection(url);
  try {
    await connection.query(statement);
  } finally {
    await connection.end();
  }
}

/**
 * Creates a database on the MariaDB/MySQL server at `url` (default: `MYSQL_URL`, whose user
 * needs CREATE and DROP) and returns its URL and `drop()`.
 */
export async function withMysqlDatabase(
  url: string = serviceUrl('mysql'),
  database: string = uniqueName('d'),
): Promise<MysqlDatabase> {
  await mysqlExec(url, `CREATE DATABASE ${quoteMysqlIdentifier(database)} CHARACTER SET utf8mb4`);
  const drop = () => mysqlExec(url, `DROP DATABASE IF EXISTS ${quoteMysqlIdentifier(database)}`);
  return { database, url: withDatabasePath(url, database), drop, [Symbol.asyncDispose]: drop };
}
