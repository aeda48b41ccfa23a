import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import pg, { type Client, type QueryResult, type QueryResultRow } from 'pg';
import { createPgPool, type PgConnectionConfig } from '../../src/pg.js';
import { sqlPoolConformance } from '../conformance/sql-pool-conformance.js';

const url = serviceUrl('postgres');
const skipReason = (await isReachable('postgres')) ? undefined : `skipped: no Postgres at ${url}`;
if (skipReason) console.log(skipReason);
const schema = uniqueName('cp_conf');

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

// The shared Postgres, isolated in a schema of its own (search_path set per connection).
sqlPoolConformance<Client, PgConnectionConfig, QueryResult<QueryResultRow>>({
  name: 'pg on the shared Postgres',
  skipReason,
  setup: async () => {
    await admin(`CREATE SCHEMA ${schema}`);
    return { connectionString: url, options: `-c search_path=${schema}` };
  },
  teardown: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`),
  unreachable: (port) => `postgres://noa:noa@127.0.0.1:${port}/noa`,
  create: (options) => createPgPool(options),
  rows: (result) => result.rows,
  param: (n) => `$${n}`,
  sleep: (seconds) => `SELECT pg_sleep(${seconds})`,
});
