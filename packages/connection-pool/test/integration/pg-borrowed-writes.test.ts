import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgPool } from '../../src/pg.js';
import { routedQueries } from './routed-queries.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

// The shared Postgres serves as its own "replica", so where a read went shows in the metrics.
describe.skipIf(!reachable)('PgPool: read-your-writes after writes on a borrowed client', () => {
  const registry = new Registry();
  const db = createPgPool({
    name: 'borrowed',
    primary: url,
    replicas: [url],
    maxReplicaLagMs: 60_000,
    registry,
    pool: { max: 2 },
  });
  const table = uniqueName('cp_borrowed');

  afterAll(async () => {
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.close();
  });

  it('a session that wrote on a connect()ed client reads from the primary afterwards', async () => {
    await db.query(`CREATE TABLE ${table} (tag text)`);
    await db.withSession(async () => {
      const client = await db.connect();
      await client.query(`INSERT INTO ${table} (tag) VALUES ('x')`);
      client.release();
      const before = await routedQueries(registry);
      await db.query(`SELECT count(*) FROM ${table}`);
      const after = await routedQueries(registry);
      expect((after.primary ?? 0) - (before.primary ?? 0)).toBe(1);
      expect(after.replica0 ?? 0).toBe(before.replica0 ?? 0);
    });
  });

  it('the same with acquire() and release(), and with a session key given to withSession', async () => {
    await db.withSession('user-42', async () => {
      const conn = await db.acquire();
      await conn.query(`INSERT INTO ${table} (tag) VALUES ('y')`);
      db.release(conn);
    });
    const before = await routedQueries(registry);
    await db.query(`SELECT count(*) FROM ${table}`, [], { session: 'user-42' });
    const after = await routedQueries(registry);
    expect((after.primary ?? 0) - (before.primary ?? 0)).toBe(1);
  });

  it('a replica borrowed for reads pins nothing', async () => {
    await db.withSession('reader-7', async () => {
      const conn = await db.acquire('replica');
      await conn.query('SELECT 1');
      db.release(conn);
    });
    const before = await routedQueries(registry);
    await db.query(`SELECT count(*) FROM ${table}`, [], { session: 'reader-7' });
    const after = await routedQueries(registry);
    expect((after.replica0 ?? 0) - (before.replica0 ?? 0)).toBe(1);
  });
});
