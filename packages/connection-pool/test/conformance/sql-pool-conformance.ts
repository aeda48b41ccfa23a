import { sparePort } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  type ClusterOptions,
  DrainTimeoutError,
  PoolClosedError,
  QueryTimeoutError,
  type SqlCluster,
  TransactionRetryError,
} from '../../src/index.js';
import { barrier, waitFor } from '../integration/helpers/wait.js';

/** What the conformance suite needs to know about one SQL backend. */
export interface SqlConformanceTarget<Conn, Config, Result> {
  /** e.g. `pg on the shared Postgres`. */
  name: string;
  /** Why to skip (service unreachable), already printed as `skipped: …`; undefined to run. */
  skipReason: string | undefined;
  /** Prepares an isolated namespace (schema / database) and returns the primary's config in it. */
  setup: () => Promise<Config>;
  teardown: () => Promise<void>;
  /** A config pointing at a port where nothing listens. */
  unreachable: (port: number) => Config;
  create: (options: ClusterOptions<Config>) => SqlCluster<Conn, Config, Result>;
  /** Rows of a result as plain objects. */
  rows: (result: Result) => Record<string, unknown>[];
  /** Placeholder for the n-th (1-based) parameter: `$1` or `?`. */
  param: (n: number) => string;
  /** A statement that takes `seconds` to answer. */
  sleep: (seconds: number) => string;
}

/**
 * The behaviour every SQL driver must show through `SqlCluster`, run unchanged against each
 * backend: parameterized queries, raw acquire/release, commit/rollback, retry of a real
 * deadlock, fail-fast when the server is unreachable, and close() reporting leaks.
 */
export function sqlPoolConformance<Conn, Config, Result>(
  target: SqlConformanceTarget<Conn, Config, Result>,
): void {
  describe.skipIf(target.skipReason !== undefined)(`SqlCluster conformance: ${target.name}`, () => {
    let config: Config;
    let pool: SqlCluster<Conn, Config, Result>;
    const p = target.param;

    beforeAll(async () => {
      config = await target.setup();
      pool = target.create({ primary: config, pool: { max: 4 } });
      await pool.query('CREATE TABLE conformance_accounts (id int PRIMARY KEY, v int NOT NULL)');
      await pool.query('INSERT INTO conformance_accounts VALUES (1, 0), (2, 0)');
    });

    afterAll(async () => {
      await pool?.close();
      await target.teardown();
    });

    it('runs parameterized queries (prepared and cached) and plain ones', async () => {
      for (let round = 0; round < 3; round += 1) {
        const result = await pool.query(`SELECT v FROM conformance_accounts WHERE id = ${p(1)}`, [2]);
        expect(target.rows(result)).toEqual([{ v: 0 }]);
      }
      expect(target.rows(await pool.query('SELECT 1 AS one')).map((row) => Number(row.one))).toEqual([1]);
    });

    it('lends raw connections with acquire/release', async () => {
      const conn = await pool.acquire();
      expect(pool.health().primary.stats.active).toBe(1);
      pool.release(conn);
      expect(pool.health().primary.stats.active).toBe(0);
    });

    it('commits, and rolls back when the function throws', async () => {
      await pool.withTransaction(async (tx) => {
        await tx.query(`UPDATE conformance_accounts SET v = ${p(1)} WHERE id = 1`, [5]);
      });
      await expect(
        pool.withTransaction(async (tx) => {
          await tx.query('UPDATE conformance_accounts SET v = 99 WHERE id = 1');
          throw new Error('undo');
        }),
      ).rejects.toThrow('undo');
      const result = await pool.query('SELECT v FROM conformance_accounts WHERE id = 1');
      expect(target.rows(result)).toEqual([{ v: 5 }]);
    });

    it('retries a real deadlock and gives up with TransactionRetryError when retries are off', async () => {
      const crossed = (maxRetries: number) => {
        const meet = barrier(2);
        const attempts: number[] = [];
        const run = (first: number, second: number) =>
          pool.withTransaction(
            async (tx) => {
              attempts.push(tx.attempt);
              await tx.query(`UPDATE conformance_accounts SET v = v + 1 WHERE id = ${p(1)}`, [first]);
              if (tx.attempt === 1) await meet();
              await tx.query(`UPDATE conformance_accounts SET v = v + 1 WHERE id = ${p(1)}`, [second]);
            },
            { maxRetries },
          );
        return { attempts, done: Promise.allSettled([run(1, 2), run(2, 1)]) };
      };
      const retried = crossed(3);
      const outcomes = await retried.done;
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled']);
      expect(Math.max(...retried.attempts)).toBe(2);

      const once = crossed(0);
      const results = await once.done;
      const failures = results.filter((outcome) => outcome.status === 'rejected');
      expect(failures).toHaveLength(1);
      expect((failures[0] as PromiseRejectedResult).reason).toBeInstanceOf(TransactionRetryError);
    });

    it('fails fast with BackendUnavailableError when the server cannot be reached', async () => {
      const dead = target.create({
        primary: target.unreachable(await sparePort()),
        pool: { acquireTimeoutMs: 30_000 },
      });
      try {
        const started = Date.now();
        await expect(dead.query('SELECT 1')).rejects.toBeInstanceOf(BackendUnavailableError);
        await expect(dead.query('SELECT 1')).rejects.toBeInstanceOf(BackendUnavailableError);
        expect(Date.now() - started).toBeLessThan(5_000);
        expect(dead.health().primary.healthy).toBe(false);
      } finally {
        await dead.close();
      }
    });

    it('queryTimeoutMs: a statement running past it rejects with QueryTimeoutError, and the pool serves on', async () => {
      const own = target.create({ primary: config, queryTimeoutMs: 300, pool: { max: 1 } });
      try {
        // Deadline test with a generous bound (the statement would run 20 s).
        const hung = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5_000).unref());
        const started = Date.now();
        const outcome = await Promise.race([
          own.query(target.sleep(20)).then(
            () => 'answered',
            (error: unknown) => error,
          ),
          hung,
        ]);
        expect(outcome).toBeInstanceOf(QueryTimeoutError);
        expect(Date.now() - started).toBeLessThan(300 + 3_000);
        expect(target.rows(await own.query('SELECT 1 AS one'))).toEqual([{ one: 1 }]);
      } finally {
        await own.close();
      }
    });

    it('drain() lets running statements finish and refuses new ones', async () => {
      const own = target.create({ primary: config, pool: { max: 2 } });
      const running = own.query(target.sleep(0.2));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const draining = own.drain();
      // A second drain() (another shutdown hook) waits for the same drain.
      let againDone = false;
      const again = own.drain().then(() => {
        againDone = true;
      });
      await expect(own.query('SELECT 1')).rejects.toBeInstanceOf(PoolClosedError);
      expect(againDone).toBe(false);
      await expect(running).resolves.toBeDefined();
      await Promise.all([draining, again]);
      expect(own.health().primary.stats.size).toBe(0);
    });

    it('drain() is bounded: a connection never released is closed after timeoutMs and counted in DrainTimeoutError', async () => {
      const own = target.create({ name: 'drainer', primary: config, pool: { max: 2 } });
      const leaked = await own.acquire();
      const hung = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3_000).unref());
      const outcome = await Promise.race([
        own.drain({ timeoutMs: 100 }).then(
          () => 'drained',
          (error: unknown) => error,
        ),
        hung,
      ]);
      expect(outcome).toBeInstanceOf(DrainTimeoutError);
      expect((outcome as DrainTimeoutError).details).toEqual({
        pool: 'drainer',
        timeoutMs: 100,
        unreleased: 1,
      });
      expect(own.health().primary.stats.size).toBe(0);
      own.release(leaked); // taken back by the drain: ignored
    });

    it('drain() keeps queryTimeoutMs: a statement running past it still times out, so drain() completes', async () => {
      const own = target.create({ primary: config, queryTimeoutMs: 300, pool: { max: 2 } });
      const running = own.query(target.sleep(20)).catch((error: unknown) => error);
      await waitFor(() => own.health().primary.stats.active === 1);
      // Deadline test with a generous bound (the statement would run 20 s).
      const hung = (ms: number) =>
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref());
      const drained = await Promise.race([own.drain().then(() => 'drained'), hung(6_000)]);
      expect(await Promise.race([running, hung(1_000)])).toBeInstanceOf(QueryTimeoutError);
      expect(drained).toBe('drained');
      await own.close();
    });

    it('close() with statements in flight: their callers get an answer or PoolClosedError, never NotBorrowedError', async () => {
      const own = target.create({ primary: config, pool: { max: 3, closeTimeoutMs: 100 } });
      const outcome = (work: Promise<unknown>) =>
        work.then(
          () => 'answered',
          (error: unknown) => (error instanceof PoolClosedError ? 'closed' : error),
        );
      const statement = outcome(own.query(target.sleep(1)));
      const transaction = outcome(own.withTransaction((tx) => tx.query(target.sleep(1))));
      const raw = await own.acquire();
      await waitFor(() => own.health().primary.stats.active === 3);
      const report = await own.close();
      expect(report.unreleased).toHaveLength(3);
      expect(['answered', 'closed']).toContain(await statement);
      expect(['answered', 'closed']).toContain(await transaction);
      // Code written against pg.Pool / mysql2 releases its client when done, even after close.
      expect(() => own.release(raw)).not.toThrow();
    });

    it('close() gives a long statement closeTimeoutMs, not its whole run: it returns, and the caller gets PoolClosedError', async () => {
      const own = target.create({ primary: config, pool: { max: 2, closeTimeoutMs: 100 } });
      const running = own.query(target.sleep(30)).catch((error: unknown) => error);
      await waitFor(() => own.health().primary.stats.active === 1);
      // Deadline test with a generous bound (the statement would run 30 s).
      const hung = (ms: number) =>
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref());
      const started = Date.now();
      const report = await Promise.race([own.close(), hung(10_000)]);
      expect(report).not.toBe('hung');
      expect(Date.now() - started).toBeLessThan(100 + 5_000);
      expect(await Promise.race([running, hung(5_000)])).toBeInstanceOf(PoolClosedError);
    });

    it('leaks() lists the connections held past leakDetectionThresholdMs, with their acquire stack', async () => {
      const own = target.create({
        primary: config,
        pool: { max: 2, leakDetectionThresholdMs: 100, closeTimeoutMs: 10 },
      });
      try {
        const held = await own.acquire();
        await own.query('SELECT 1');
        await waitFor(() => own.leaks().length > 0);
        const leaks = own.leaks();
        expect(leaks).toHaveLength(1);
        expect(leaks[0]!.pool).toBe('db:primary');
        expect(leaks[0]!.acquireStack).toMatch(/sql-pool-conformance/);
        own.release(held);
        expect(own.leaks()).toEqual([]);
      } finally {
        await own.close();
      }
    });

    it('close() rejects new work and reports connections never released', async () => {
      const own = target.create({
        primary: config,
        pool: { max: 2, closeTimeoutMs: 20, leakDetectionThresholdMs: 60_000 },
      });
      await own.acquire();
      const report = await own.close();
      expect(report.unreleased).toHaveLength(1);
      expect(report.unreleased[0]!.acquireStack).toContain('acquired here');
      await expect(own.query('SELECT 1')).rejects.toBeInstanceOf(PoolClosedError);
    });
  });
}
