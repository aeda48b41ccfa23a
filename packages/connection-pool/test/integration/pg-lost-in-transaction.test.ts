import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgPool, type PgPoolClient } from '../../src/pg.js';
import { giveBackCounters } from './helpers/metrics.js';
import { waitFor } from './helpers/wait.js';

const url = serviceUrl('postgres');
const reachable = await isReachable('postgres');
if (!reachable) console.log(`skipped: no Postgres at ${url}`);

/** The socket a pg client reads its server's messages from (pg's own field). */
const socketOf = (client: PgPoolClient) =>
  (client as unknown as { connection: { stream: { pause(): void; resume(): void } } }).connection.stream;

const pidOf = async (client: PgPoolClient | pg.Client) =>
  (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

/** Resolves once the client has seen its connection end. */
const ended = (client: PgPoolClient) => new Promise<void>((resolve) => client.once('end', () => resolve()));

// README "Transactions and session state": a connection given back inside a transaction is
// rolled back before it is lent again, and closed when it cannot be. Here its server ended it
// while its borrower held it inside a transaction, in the two ways a user meets: an operator's
// pg_terminate_backend, and the server's idle_in_transaction_session_timeout. Either way the
// next borrower (max: 1: the same slot) gets a new, working connection, and no error.
//
// "noticed": the client read the server's FATAL before it was given back (the common case: the
// borrower was idle long enough): it is closed as unusable, no ROLLBACK is tried.
// "not yet noticed": given back before the client read it (its socket paused meanwhile, so the
// test decides the order): it still reads "in a transaction", the give-back ROLLBACK fails, and
// the connection is closed on that (errors_total{kind="reset"}).
describe.skipIf(!reachable)(
  'PgPool: a connection its server ended while it was borrowed inside a transaction',
  () => {
    const outside = new pg.Client({ connectionString: url });

    beforeAll(async () => {
      await outside.connect();
    });

    afterAll(async () => {
      await outside.end();
    });

    const backendGone = async (pid: number) =>
      (await outside.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0;

    /** Ends the borrowed client's backend, the way `cause` says; resolves once the backend is gone. */
    const endBackend = async (client: PgPoolClient, pid: number, cause: string) => {
      if (cause === 'pg_terminate_backend') {
        const terminated = await outside.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [
          pid,
        ]);
        expect(terminated.rows[0]!.ok).toBe(true);
      }
      // idle_in_transaction_session_timeout: the server ends it on its own once it has idled.
      await waitFor(() => backendGone(pid));
      void client;
    };

    /** Opens the transaction the borrower holds when its backend ends. */
    const openTransaction = async (client: PgPoolClient, cause: string) => {
      if (cause === 'idle_in_transaction_session_timeout')
        await client.query(`SET idle_in_transaction_session_timeout = '100ms'`);
      await client.query('BEGIN');
      await client.query('SELECT 1');
    };

    const causes = ['pg_terminate_backend', 'idle_in_transaction_session_timeout'];

    it.each(causes)(
      '%s, noticed before the give-back: closed as unusable, the next borrower gets a new connection',
      async (cause) => {
        const registry = new Registry();
        const name = uniqueName('cp_lost');
        const db = createPgPool({ name, primary: url, pool: { max: 1 }, registry });
        try {
          const client = await db.connect();
          const pid = await pidOf(client);
          const end = ended(client);
          await openTransaction(client, cause);
          await endBackend(client, pid, cause);
          await end;
          client.release();

          const next = await db.connect();
          try {
            const nextPid = await pidOf(next);
            expect(nextPid).not.toBe(pid);
            expect(next.getTransactionStatus()).toBe('I');
          } finally {
            next.release();
          }
          expect(await db.query<{ one: number }>('SELECT 1 AS one')).toMatchObject({ rows: [{ one: 1 }] });
          expect(db.health().primary.healthy).toBe(true);
          expect(db.health().primary.stats.size).toBe(1);
          const pool = `${name}:primary`;
          // No ROLLBACK was tried on it: neither counted as a failed reset nor as a rollback.
          expect(await giveBackCounters(registry, pool)).toEqual({
            created: 2,
            destroyed: 1,
            resetErrors: 0,
            releasedInTransaction: 0,
          });
        } finally {
          await db.close();
        }
      },
    );

    it.each(causes)(
      '%s, not yet noticed at the give-back: its ROLLBACK fails, it is closed (errors_total{kind="reset"}), the next borrower gets a new connection',
      async (cause) => {
        const registry = new Registry();
        const name = uniqueName('cp_lost');
        const db = createPgPool({ name, primary: url, pool: { max: 1 }, registry });
        try {
          const client = await db.connect();
          const pid = await pidOf(client);
          await openTransaction(client, cause);
          socketOf(client).pause();
          await endBackend(client, pid, cause);
          expect(client.getTransactionStatus()).toBe('T'); // what the client still believes
          client.release();
          // The next borrower waits for the give-back's ROLLBACK, which reads the server's FATAL.
          const waiting = db.connect();
          socketOf(client).resume();

          const next = await waiting;
          try {
            expect(next).not.toBe(client);
            expect(await pidOf(next)).not.toBe(pid);
            expect(next.getTransactionStatus()).toBe('I');
          } finally {
            next.release();
          }
          expect(db.health().primary.healthy).toBe(true);
          expect(db.health().primary.stats.size).toBe(1);
          const pool = `${name}:primary`;
          expect(await giveBackCounters(registry, pool)).toMatchObject({
            resetErrors: 1,
            releasedInTransaction: 1,
            destroyed: 1,
          });
        } finally {
          await db.close();
        }
      },
    );

    it('a statement statement_timeout cancelled inside the transaction: the give-back ROLLBACK succeeds, the same connection is lent again, clean', async () => {
      const registry = new Registry();
      const name = uniqueName('cp_lost');
      const db = createPgPool({ name, primary: url, pool: { max: 1 }, registry });
      try {
        const client = await db.connect();
        const pid = await pidOf(client);
        await client.query('BEGIN');
        await client.query(`SET LOCAL statement_timeout = '50ms'`);
        await expect(client.query('SELECT pg_sleep(30)')).rejects.toMatchObject({ code: '57014' });
        // 'E' once pg read the ReadyForQuery after the error; the promise may settle before that.
        expect(['T', 'E']).toContain(client.getTransactionStatus());
        client.release();

        const next = await db.connect();
        try {
          expect(next).toBe(client);
          expect(next.getTransactionStatus()).toBe('I');
          expect(await pidOf(next)).toBe(pid);
          const setting = await next.query<{ timeout: string }>(
            `SELECT current_setting('statement_timeout') AS timeout`,
          );
          expect(setting.rows[0]!.timeout).toBe('0'); // SET LOCAL went with the rollback
        } finally {
          next.release();
        }
        const pool = `${name}:primary`;
        expect(await giveBackCounters(registry, pool)).toMatchObject({
          releasedInTransaction: 1,
          resetErrors: 0,
          destroyed: 0,
        });
        expect(db.health().primary.stats.size).toBe(1);
      } finally {
        await db.close();
      }
    });
  },
);
