import { isReachable, serviceUrl } from '@noa/testkit';
import type { QueryResult } from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgPool } from '../../src/pg.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

/** The backend pid of a query callback's result: which server connection ran it. */
function pidOf(result: QueryResult): number {
  return (result.rows[0] as { pid: number }).pid;
}

// pg.Pool's client.release(err) closes the client only when err is truthy: pg's own callbacks
// pass null on success, so `client.query(sql, (err, res) => { client.release(err) })`, the form
// pg's documentation shows, gives back a working client.
describe.skipIf(!reachable)('PgPool#connect(): release(err) as pg.Pool takes it', () => {
  const db = createPgPool({ name: 'release-arg', primary: url, pool: { max: 1 } });

  afterAll(async () => {
    await db.close();
  });

  it('release(null) from a pg callback, release(false) and release() give the client back open', async () => {
    const first = await db.connect();
    const { pid, error } = await new Promise<{ pid: number; error: Error | null }>((resolve, reject) => {
      first.query('SELECT pg_backend_pid() AS pid', (err: Error | null, result: QueryResult) => {
        if (err) reject(err);
        else resolve({ pid: pidOf(result), error: err });
      });
    });
    expect(error).toBeNull();
    first.release(error as unknown as Error);
    for (const giveBack of [false, undefined] as const) {
      const again = await db.connect();
      expect(pidOf(await again.query('SELECT pg_backend_pid() AS pid'))).toBe(pid);
      again.release(giveBack);
    }
  });

  it('release(error) and release(true) close the client', async () => {
    const before = await db.connect();
    const pid = pidOf(await before.query('SELECT pg_backend_pid() AS pid'));
    before.release(new Error('broken'));
    const after = await db.connect();
    const next = pidOf(await after.query('SELECT pg_backend_pid() AS pid'));
    expect(next).not.toBe(pid);
    after.release(true);
    const last = await db.connect();
    expect(pidOf(await last.query('SELECT pg_backend_pid() AS pid'))).not.toBe(next);
    last.release();
  });
});
