import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, PoolClosedError, QueryTimeoutError } from '../../src/index.js';
import { createPgPool } from '../../src/pg.js';
import { type PrivatePgCluster, privatePgSkipReason, startPrivatePgCluster } from './helpers/private-pg.js';
import { sleep, waitFor } from './helpers/wait.js';

const skip = privatePgSkipReason();
if (skip) console.log(skip);

interface Outcome {
  ok: boolean;
  error?: unknown;
  ms: number;
  at: number;
}

describe.skipIf(skip !== undefined)('PgPool when the primary dies', () => {
  let cluster: PrivatePgCluster;

  beforeAll(async () => {
    cluster = await startPrivatePgCluster();
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('fails queries fast with BackendUnavailableError under load, and recovers when the server is back', async () => {
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      connectTimeoutMs: 2_000,
      pool: { max: 8, acquireTimeoutMs: 5_000, initialBackoffMs: 50, maxBackoffMs: 400 },
    });
    await pool.query('CREATE TABLE IF NOT EXISTS hits (at timestamptz NOT NULL DEFAULT now())');
    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async (index: number) => {
      while (running) {
        const started = Date.now();
        try {
          await (index % 2 === 0 ? pool.query('SELECT 1') : pool.query('INSERT INTO hits DEFAULT VALUES'));
          outcomes.push({ ok: true, ms: Date.now() - started, at: started });
        } catch (error) {
          outcomes.push({ ok: false, error, ms: Date.now() - started, at: started });
          await sleep(10);
        }
      }
    };
    const workers = Array.from({ length: 16 }, (_, index) => worker(index));
    try {
      await sleep(300);
      const killedAt = Date.now();
      await cluster.killPrimary();
      await sleep(1_500);
      const during = outcomes.filter((outcome) => outcome.at >= killedAt + 200);
      const failures = during.filter((outcome) => !outcome.ok);
      expect(failures.length).toBeGreaterThan(0);
      for (const failure of failures) expect(failure.error).toBeInstanceOf(BackendUnavailableError);
      // Fail fast: nobody waits out the 5 s acquire timeout (generous bound: connect timeout + slack).
      expect(Math.max(...failures.map((failure) => failure.ms))).toBeLessThan(2_000 + 1_000);
      expect(pool.health().primary.healthy).toBe(false);

      await cluster.startPrimary();
      const restartedAt = Date.now();
      const deadline = restartedAt + 15_000;
      while (Date.now() < deadline && !outcomes.some((outcome) => outcome.ok && outcome.at >= restartedAt)) {
        await sleep(50);
      }
      expect(outcomes.some((outcome) => outcome.ok && outcome.at >= restartedAt)).toBe(true);
      expect(pool.health().primary.healthy).toBe(true);
    } finally {
      running = false;
      await Promise.all(workers);
      await pool.close();
    }
  });

  it('does not hang on a frozen primary: queryTimeoutMs closes the stuck connection, connects time out', async () => {
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      queryTimeoutMs: 500,
      connectTimeoutMs: 1_000,
      pool: { max: 2, acquireTimeoutMs: 10_000, initialBackoffMs: 50, maxBackoffMs: 200 },
    });
    try {
      await pool.query('SELECT 1');
      await cluster.freezePrimary();
      try {
        let started = Date.now();
        await expect(pool.query('SELECT 1')).rejects.toBeInstanceOf(QueryTimeoutError);
        expect(Date.now() - started).toBeLessThan(500 + 1_500);
        started = Date.now();
        await expect(pool.query('SELECT 1')).rejects.toBeInstanceOf(BackendUnavailableError);
        expect(Date.now() - started).toBeLessThan(1_000 + 1_500);
      } finally {
        await cluster.thawPrimary();
      }
      let answered = false;
      for (let attempt = 0; attempt < 100 && !answered; attempt += 1) {
        answered = await pool.query('SELECT 1').then(
          () => true,
          async () => {
            await sleep(100);
            return false;
          },
        );
      }
      expect(answered).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('close() returns while the primary is frozen, with idle and lent connections', async () => {
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      connectTimeoutMs: 1_000,
      pool: { min: 2, max: 3, closeTimeoutMs: 200 },
    });
    let frozen = false;
    try {
      await pool.query('SELECT 1');
      await waitFor(() => pool.health().primary.stats.size >= 2);
      const running = pool.query('SELECT pg_sleep(30)').catch((error: unknown) => error);
      await waitFor(() => pool.health().primary.stats.active === 1);
      await cluster.freezePrimary();
      frozen = true;
      // Deadline test with a generous bound: a goodbye the frozen server never answers must
      // not hold close() (closeTimeoutMs for the lent one, connectTimeoutMs for a goodbye).
      const hung = (ms: number) =>
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), ms).unref());
      const started = Date.now();
      const report = await Promise.race([pool.close(), hung(10_000)]);
      expect(report).not.toBe('hung');
      expect(Date.now() - started).toBeLessThan(200 + 1_000 + 3_000);
      expect(await Promise.race([running, hung(5_000)])).toBeInstanceOf(PoolClosedError);
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('primaryHealthCheckIntervalMs probes an idle primary: frozen → unresponsive, killed → down, healthy again when it answers', async () => {
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      primaryHealthCheckIntervalMs: 100,
      queryTimeoutMs: 500,
      connectTimeoutMs: 1_000,
      pool: { max: 2, initialBackoffMs: 50, maxBackoffMs: 200 },
    });
    let frozen = false;
    try {
      await pool.query('SELECT 1');
      expect(pool.health().primary.healthy).toBe(true);
      // No traffic from here on: only the probe can notice.
      await cluster.freezePrimary();
      frozen = true;
      await waitFor(() => !pool.health().primary.healthy, 15_000);
      expect(pool.health().primary.reason).toBe('unresponsive');
      await cluster.thawPrimary();
      frozen = false;
      await waitFor(() => pool.health().primary.healthy, 15_000);
      await cluster.killPrimary();
      await waitFor(() => !pool.health().primary.healthy, 15_000);
      expect(pool.health().primary.reason).toBe('down');
      await cluster.startPrimary();
      await waitFor(() => pool.health().primary.healthy, 30_000);
      expect(await pool.query('SELECT 1 AS one')).toMatchObject({ rows: [{ one: 1 }] });
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('the primary health probe never asks failover for a frozen primary, however long it stays frozen (slow is not gone)', async () => {
    let failovers = 0;
    const registry = new Registry();
    const pool = createPgPool({
      name: 'probe_frozen',
      registry,
      primary: cluster.primaryUrl,
      primaryHealthCheckIntervalMs: 100,
      queryTimeoutMs: 300,
      connectTimeoutMs: 500,
      pool: { max: 2, initialBackoffMs: 50, maxBackoffMs: 200 },
      failover: async () => {
        failovers += 1;
        return undefined;
      },
    });
    let frozen = false;
    try {
      await pool.query('SELECT 1');
      await cluster.freezePrimary();
      frozen = true;
      await waitFor(() => !pool.health().primary.healthy, 15_000);
      // Until the probe has found no connection left and connected again, several times (each
      // connect to the frozen server fails after connectTimeoutMs: a `create` error).
      const failedConnects = async () =>
        Number(
          /noa_connection_pool_errors_total\{pool="probe_frozen:primary",kind="create"\} (\d+)/.exec(
            await registry.metrics(),
          )?.[1] ?? 0,
        );
      await waitFor(async () => (await failedConnects()) >= 3, 15_000);
      expect(pool.health().primary.reason).toBe('unresponsive');
      expect(failovers).toBe(0);
      await cluster.thawPrimary();
      frozen = false;
      await waitFor(() => pool.health().primary.healthy, 15_000);
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('close() with the primary health probe stuck on a frozen primary reports no leak: the probe is not a caller', async () => {
    const registry = new Registry();
    const pool = createPgPool({
      name: 'probe_close',
      primary: cluster.primaryUrl,
      primaryHealthCheckIntervalMs: 50,
      queryTimeoutMs: 5_000,
      pool: { max: 2, closeTimeoutMs: 100 },
      registry,
    });
    let frozen = false;
    try {
      await pool.query('SELECT 1');
      await cluster.freezePrimary();
      frozen = true;
      // A probe round starts and its ping goes unanswered.
      await waitFor(() => pool.health().primary.stats.active > 0);
      const report = await pool.close();
      expect(report.unreleased).toEqual([]);
      expect(await registry.metrics()).not.toMatch(/leaks_total\{pool="probe_close:primary"\} [1-9]/);
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('the primary health probe does not queue behind busy connections: no acquire timeouts, no waiter ahead of queries', async () => {
    const registry = new Registry();
    const pool = createPgPool({
      name: 'probe_busy',
      primary: cluster.primaryUrl,
      primaryHealthCheckIntervalMs: 50,
      connectTimeoutMs: 200,
      pool: { max: 1 },
      registry,
    });
    try {
      await pool.query('SELECT 1');
      // The only connection is busy for a second: the probe has nothing free to ping.
      let sawWaiter = false;
      const busy = pool.query('SELECT pg_sleep(1)');
      const watch = setInterval(() => {
        if (pool.health().primary.stats.waiting > 0) sawWaiter = true;
      }, 10);
      await busy;
      clearInterval(watch);
      expect(sawWaiter).toBe(false);
      // No sample at all: the counter was never incremented.
      expect(await registry.metrics()).not.toMatch(
        /acquire_timeouts_total\{pool="probe_busy:primary"\} [1-9]/,
      );
      expect(pool.health().primary.healthy).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('after a failover, a connect to the old primary that was still in progress never lends a connection to it', async () => {
    let failovers = 0;
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      connectTimeoutMs: 1_500,
      pool: { max: 4 },
      // The replica stands in for the new primary: only reads are sent here.
      failover: async () => {
        failovers += 1;
        return cluster.replicaUrl;
      },
    });
    const port = async () =>
      Number((await pool.query<{ port: number }>('SELECT inet_server_port() AS port')).rows[0]!.port);
    let frozen = false;
    try {
      // Frozen with no connection open: every connect hangs in its handshake.
      await cluster.freezePrimary();
      frozen = true;
      const first = port();
      // The second connect starts 1 s after the first: it is still waiting when the first times
      // out (at 1.5 s), and the thaw below comes about 1 s before its own timeout.
      await sleep(1_000);
      const second = port();
      // The first connect times out: failover switches to the new server while the second
      // connect to the old one is still waiting.
      await expect(first).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(failovers).toBe(1);
      // The old primary wakes before that connect gives up, and answers it.
      await cluster.thawPrimary();
      frozen = false;
      expect(await second).toBe(cluster.replicaPort);
      for (let query = 0; query < 4; query += 1) expect(await port()).toBe(cluster.replicaPort);
      expect(pool.health().primary.healthy).toBe(true);
      expect(failovers).toBe(1);
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('a transaction whose COMMIT times out on a frozen primary is not retried: QueryTimeoutError, and it is applied at most once (committed or not, as the server got the COMMIT or not)', async () => {
    const pool = createPgPool({
      primary: cluster.primaryUrl,
      queryTimeoutMs: 500,
      connectTimeoutMs: 1_000,
      pool: { max: 2, initialBackoffMs: 50, maxBackoffMs: 200 },
    });
    let frozen = false;
    let attempts = 0;
    const tag = `once-${Date.now()}`;
    try {
      await pool.query('CREATE TABLE IF NOT EXISTS commits (tag text NOT NULL)');
      const outcome = await pool
        .withTransaction(
          async (tx) => {
            attempts += 1;
            await tx.query('INSERT INTO commits (tag) VALUES ($1)', [tag]);
            // Only the COMMIT meets the frozen server.
            await cluster.freezePrimary();
            frozen = true;
          },
          { retryOn: ['40001', '40P01', '08006', '57P01'] },
        )
        .catch((error: unknown) => error);
      expect(outcome).toBeInstanceOf(QueryTimeoutError);
      expect(attempts).toBe(1);
      await cluster.thawPrimary();
      frozen = false;
      const count = async () =>
        Number(
          (
            await pool
              .query<{ n: string }>('SELECT count(*) AS n FROM commits WHERE tag = $1', [tag])
              .catch(() => ({ rows: [{ n: '-1' }] }))
          ).rows[0]!.n,
        );
      await waitFor(async () => (await count()) >= 0);
      // The old backend may still be committing after the thaw: watch it settle, never past 1.
      for (let poll = 0; poll < 20; poll += 1) {
        expect(await count()).toBeLessThanOrEqual(1);
        await sleep(100);
      }
      expect(attempts).toBe(1);
    } finally {
      if (frozen) await cluster.thawPrimary();
      await pool.close();
    }
  });

  it('fails over to a new primary given by the failover callback', async () => {
    let failovers = 0;
    const logger = recordingLogger();
    const pool = createPgPool({
      logger,
      primary: cluster.primaryUrl,
      connectTimeoutMs: 2_000,
      pool: { max: 4, initialBackoffMs: 50, maxBackoffMs: 200 },
      failover: async () => {
        failovers += 1;
        await cluster.promoteReplica();
        return cluster.replicaUrl;
      },
    });
    try {
      await pool.query('SELECT 1');
      await cluster.killPrimary();
      await expect(pool.query('INSERT INTO hits DEFAULT VALUES')).rejects.toBeInstanceOf(
        BackendUnavailableError,
      );
      let port = 0;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        try {
          const result = await pool.query<{ port: number }>(
            'INSERT INTO hits DEFAULT VALUES RETURNING inet_server_port() AS port',
          );
          port = Number(result.rows[0]!.port);
          break;
        } catch {
          await sleep(100);
        }
      }
      expect(port).toBe(cluster.replicaPort);
      expect(failovers).toBe(1);
      // README "Logs": failover.
      expect(logger.messages('warn')).toContain('failing over to a new primary');
    } finally {
      await pool.close();
    }
  });
});
