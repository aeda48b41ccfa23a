import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import mysql, { type Connection } from 'mysql2/promise';
import { createMysqlPool, type MysqlConnectionConfig, type MysqlResult } from '../../src/mysql.js';
import { sqlPoolConformance } from '../conformance/sql-pool-conformance.js';

const url = serviceUrl('mysql');
const skipReason = (await isReachable('mysql')) ? undefined : `skipped: no MariaDB at ${url}`;
if (skipReason) console.log(skipReason);
const database = uniqueName('cp_conf');

async function admin(sql: string): Promise<void> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}

// The shared MariaDB, isolated in a database of its own.
sqlPoolConformance<Connection, MysqlConnectionConfig, MysqlResult>({
  name: 'mysql2 on the shared MariaDB',
  skipReason,
  setup: async () => {
    await admin(`CREATE DATABASE ${database}`);
    const parsed = new URL(url);
    parsed.pathname = `/${database}`;
    return parsed.toString();
  },
  teardown: () => admin(`DROP DATABASE IF EXISTS ${database}`),
  unreachable: (port) => `mysql://noa:noa@127.0.0.1:${port}/noa`,
  create: (options) => createMysqlPool(options),
  rows: (result) => result[0] as unknown as Record<string, unknown>[],
  param: () => '?',
  sleep: (seconds) => `SELECT SLEEP(${seconds})`,
});
