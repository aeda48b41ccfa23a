import diagnosticsChannel from 'node:diagnostics_channel';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueryTimeoutError, TransactionRetryError } from '../../src/index.js';
import { createPgPool, type PgPool } from '../../src/pg.js';
import { type PrivatePgCluster, privatePgSkipReason, startPrivatePgCluster } from './helpers/private-pg.js';
import { barrier, sleep, waitFor } from './helpers/wait.js';

const skip = privatePgSkipReason();
if (skip) console.log(skip);

describe.skipIf(skip !== undefined)('PgPool on a private primary + streaming replica', () => {
  let cluster: PrivatePgCluster;
  let pool: PgPool;
  const registry = new Registry();
  const logger = recordingLogger();

  beforeAll(async () => {
    cluster = await startPrivatePgCluster();
    pool = createPgPool({
      name: 'routing',
      primary: cluster.primaryUrl,
      replicas: [cluster.replicaUrl],
      readYourWritesMs: 400,
      healthCheckIntervalMs: 100,
      maxReplicaLagMs: 300,
      pool: { max: 6, initialBackoffMs: 50, maxBackoffMs: 200 },
      registry,
      logger,
    });
    await pool.query(
      'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, v int NOT NULL DEFAULT 0)',
    );
    await pool.query('CREATE SEQUENCE ticket');
    // The replica must have replayed the DDL before reads can see the table.
    await waitFor(() => pool.health().replicas[0]!.healthy);
    for (let attempt = 0; attempt < 200; attempt += 1) {
      const ready = await pool
        .query("SELECT pg_is_in_recovery() AND to_regclass('ticket') IS NOT NULL AS ok", [], {
          target: 'replica',
        })
        .then((result) => result.rows[0]?.ok === true);
      if (ready && pool.health().replicas[0]!.healthy) break;
      await sleep(50);
    }
  });

  afterAll(async () => {
    await pool?.close();
    await cluster?.destroy();
  });

  const where = async (sql: string, values: unknown[] = [], options = {}) => {
    const result = await pool.query<{ port: number }>(sql, values, options);
    return Number(result.rows[0]!.port) === cluster.replicaPort ? 'replica' : 'primary';
  };

  it('sends reads to the replica and writes to the primary', async () => {
    const routed: unknown[] = [];
    const onRoute = (message: unknown) => routed.push(message);
    diagnosticsChannel.subscribe('noa:connection-pool:route', onRoute);
    const reads = await pool.query<{ recovering: boolean; port: number }>(
      'SELECT pg_is_in_recovery() AS recovering, inet_server_port() AS port',
    );
    expect(reads.rows[0]).toEqual({ recovering: true, port: cluster.replicaPort });
    expect(await where("INSERT INTO items (name) VALUES ('a') RETURNING inet_server_port() AS port")).toBe(
      'primary',
    );
    expect(await where('SELECT inet_server_port() AS port FROM items LIMIT 1 FOR UPDATE')).toBe('primary');
    expect(await where("SELECT nextval('ticket'), inet_server_port() AS port")).toBe('primary');
    expect(await where('SELECT pg_advisory_unlock_all(), inet_server_port() AS port')).toBe('primary');
    expect(
      await where(
        "WITH added AS (INSERT INTO items (name) VALUES ('cte') RETURNING id) SELECT inet_server_port() AS port FROM added",
      ),
    ).toBe('primary');
    expect(await where('/* noa:primary */ SELECT inet_server_port() AS port')).toBe('primary');
    expect(await where('SELECT inet_server_port() AS port', [], { target: 'primary' })).toBe('primary');
    expect(await where('SELECT inet_server_port() AS port WHERE $1::int = 1', [1])).toBe('replica');
    const text = await registry.metrics();
    expect(text).toMatch(
      /noa_connection_pool_routed_queries_total\{cluster="routing",target="replica0",reason="read"\}/,
    );
    expect(text).toMatch(/routed_queries_total\{cluster="routing",target="primary",reason="locking_read"\}/);
    expect(text).toMatch(/noa_connection_pool_replica_in_rotation\{cluster="routing",replica="replica0"\} 1/);
    // Every routing target is the `pool` label of that server's own series: `<cluster>:<target>`.
    const targets = new Set(
      [...text.matchAll(/routed_queries_total\{cluster="routing",target="([^"]+)"/g)].map((m) => m[1]),
    );
    expect([...targets].sort()).toEqual(['primary', 'replica0']);
    for (const target of targets) {
      expect(text).toContain(`noa_connection_pool_acquire_duration_seconds_count{pool="routing:${target}"}`);
    }
    // No cluster-level series carries a `pool` label (it would read as one server's pool).
    expect(text).not.toMatch(
      /noa_connection_pool_(routed_queries_total|replica_in_rotation|replica_lag_seconds)\{pool=/,
    );
    diagnosticsChannel.unsubscribe('noa:connection-pool:route', onRoute);
    // The diagnostics channel names the cluster the same way (its reasons in the API's spelling).
    expect(routed).toContainEqual({ cluster: 'routing', target: 'replica0', reason: 'read' });
    expect(routed).toContainEqual({ cluster: 'routing', target: 'primary', reason: 'locking-read' });
  });

  it('keeps a session on the primary after its write (read-your-writes), then returns to the replica', async () => {
    await pool.withSession(async () => {
      await pool.query("INSERT INTO items (name) VALUES ('ryw')");
      expect(await where('SELECT inet_server_port() AS port')).toBe('primary');
      // An explicit replica hint opts out of read-your-writes.
      expect(await where('/* noa:replica */ SELECT inet_server_port() AS port')).toBe('replica');
      const seen = await pool.query("SELECT count(*)::int AS n FROM items WHERE name = 'ryw'");
      expect(seen.rows[0]!.n).toBe(1);
      await sleep(500);
      expect(await where('SELECT inet_server_port() AS port')).toBe('replica');
    });
    // Another session is not pinned by someone else's write.
    await pool.query("INSERT INTO items (name) VALUES ('other')", [], { session: 'user-1' });
    expect(await where('SELECT inet_server_port() AS port', [], { session: 'user-1' })).toBe('primary');
    expect(await where('SELECT inet_server_port() AS port', [], { session: 'user-2' })).toBe('replica');
  });

  it('takes a lagging replica (replay paused) out of rotation and back when it catches up', async () => {
    await cluster.pauseReplay();
    try {
      await pool.query("INSERT INTO items (name) VALUES ('while paused')");
      await waitFor(() => pool.health().replicas[0]!.reason === 'lag');
      expect(await where('SELECT inet_server_port() AS port')).toBe('primary');
    } finally {
      await cluster.resumeReplay();
    }
    await waitFor(() => pool.health().replicas[0]!.healthy);
    expect(await where('SELECT inet_server_port() AS port')).toBe('replica');
    // README "Logs": replicas leaving and rejoining rotation.
    const rotation = logger.entries.filter((entry) => entry.message.startsWith('replica '));
    expect(rotation.at(-2)).toMatchObject({
      level: 'warn',
      message: 'replica left rotation',
      fields: { replica: 'replica0', reason: 'lag' },
    });
    expect(rotation.at(-1)).toMatchObject({
      level: 'info',
      message: 'replica back in rotation',
      fields: { replica: 'replica0' },
    });
  });

  it('routes reads to the primary while the replica is stopped, and back when it returns', async () => {
    await cluster.stopReplica();
    try {
      // The first read may hit the dead replica: it is retried on the primary, never failed.
      for (let index = 0; index < 5; index += 1) {
        expect(await where('SELECT inet_server_port() AS port')).toBe('primary');
      }
      await waitFor(() => pool.health().replicas[0]!.reason === 'down');
    } finally {
      await cluster.startReplica();
    }
    await waitFor(() => pool.health().replicas[0]!.healthy, 20_000);
    expect(await where('SELECT inet_server_port() AS port')).toBe('replica');
  });

  it('answers reads running on the replica when it stops mid-query from the primary', async () => {
    const reads = Array.from({ length: 3 }, () =>
      where('SELECT pg_sleep(1), inet_server_port() AS port', [], { target: 'replica' }),
    );
    await waitFor(() => pool.health().replicas[0]!.stats.active >= 3);
    await cluster.stopReplica();
    try {
      expect(await Promise.all(reads)).toEqual(['primary', 'primary', 'primary']);
      expect(pool.health().replicas[0]!.healthy).toBe(false);
    } finally {
      await cluster.startReplica();
    }
    await waitFor(() => pool.health().replicas[0]!.healthy, 20_000);
  });

  it('retries a read that times out on a frozen replica on the primary, but not one that is only slow', async () => {
    const timedRegistry = new Registry();
    const timed = createPgPool({
      name: 'timeouts',
      primary: cluster.primaryUrl,
      replicas: [cluster.replicaUrl],
      queryTimeoutMs: 600,
      connectTimeoutMs: 1_000,
      healthCheckIntervalMs: 100,
      maxReplicaLagMs: 5_000,
      pool: { max: 4, initialBackoffMs: 50, maxBackoffMs: 200 },
      registry: timedRegistry,
    });
    const on = async (sql: string) => {
      const result = await timed.query<{ port: number }>(sql);
      return Number(result.rows[0]!.port) === cluster.replicaPort ? 'replica' : 'primary';
    };
    const onPrimary = async () =>
      (await timedRegistry.metrics())
        .split('\n')
        .filter((row) =>
          row.startsWith('noa_connection_pool_routed_queries_total{cluster="timeouts",target="primary"'),
        )
        .reduce((sum, row) => sum + Number(row.split(' ')[1]), 0);
    let frozen = false;
    try {
      await waitFor(() => timed.health().replicas[0]!.healthy);
      expect(await on('SELECT inet_server_port() AS port')).toBe('replica');
      // Slow on a replica that keeps answering its health checks: the timeout is the answer,
      // and the primary is not handed a statement known to run past the deadline.
      await expect(timed.query('SELECT pg_sleep(3), inet_server_port() AS port')).rejects.toBeInstanceOf(
        QueryTimeoutError,
      );
      expect(await onPrimary()).toBe(0);
      expect(timed.health().replicas[0]!.healthy).toBe(true);
      await cluster.freezeReplica();
      frozen = true;
      // Sent to the frozen replica (its lag probe has not given up yet), answered by the primary.
      expect(await on('SELECT inet_server_port() AS port')).toBe('primary');
      expect(timed.health().replicas[0]!.healthy).toBe(false);
      expect(await on('SELECT inet_server_port() AS port')).toBe('primary');
      await cluster.thawReplica();
      frozen = false;
      await waitFor(() => timed.health().replicas[0]!.healthy, 20_000);
      expect(await on('SELECT inet_server_port() AS port')).toBe('replica');
    } finally {
      if (frozen) await cluster.thawReplica();
      await timed.close();
    }
  });

  it('close() with a lag probe stuck on a frozen replica: no unreleased connection, no replica leaving rotation at shutdown', async () => {
    const logger = recordingLogger();
    const probed = createPgPool({
      name: 'probe_close',
      primary: cluster.primaryUrl,
      replicas: [cluster.replicaUrl],
      // The lag probe's deadline: 2 × 50 + 5000 ms, far past the close.
      healthCheckIntervalMs: 50,
      connectTimeoutMs: 5_000,
      pool: { max: 2, closeTimeoutMs: 100 },
      logger,
    });
    let frozen = false;
    try {
      await waitFor(() => probed.health().replicas[0]!.stats.idle > 0);
      await cluster.freezeReplica();
      frozen = true;
      await waitFor(() => probed.health().replicas[0]!.stats.active > 0);
      const report = await probed.close();
      expect(report.unreleased).toEqual([]);
      await sleep(100);
      expect(logger.messages('warn')).toEqual([]);
    } finally {
      if (frozen) await cluster.thawReplica();
      await probed.close();
    }
    await waitFor(() => pool.health().replicas[0]!.healthy, 20_000);
  });

  it('commits, rolls back on throw, and retries serialization failures (40001)', async () => {
    await pool.withTransaction(async (tx) => {
      await tx.query("INSERT INTO items (name) VALUES ('committed')");
    });
    await expect(
      pool.withTransaction(async (tx) => {
        await tx.query("INSERT INTO items (name) VALUES ('rolled back')");
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const names = await pool.query("SELECT name FROM items WHERE name IN ('committed', 'rolled back')", [], {
      target: 'primary',
    });
    expect(names.rows.map((row) => row.name)).toEqual(['committed']);

    await pool.query('CREATE TABLE ledger (v int NOT NULL)');
    const meet = barrier(2);
    const attempts: number[] = [];
    const transfer = () =>
      pool.withTransaction(
        async (tx) => {
          attempts.push(tx.attempt);
          await tx.query('SELECT coalesce(sum(v), 0) FROM ledger');
          if (tx.attempt === 1) await meet();
          await tx.query('INSERT INTO ledger VALUES (1)');
        },
        { isolation: 'serializable', retryOn: ['40001', '40P01'] },
      );
    await Promise.all([transfer(), transfer()]);
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    const total = await pool.query('SELECT count(*)::int AS n FROM ledger', [], { target: 'primary' });
    expect(total.rows[0]!.n).toBe(2);

    // With no retries allowed the same conflict surfaces as TransactionRetryError.
    const meetAgain = barrier(2);
    const once = () =>
      pool.withTransaction(
        async (tx) => {
          await tx.query('SELECT coalesce(sum(v), 0) FROM ledger');
          await meetAgain();
          await tx.query('INSERT INTO ledger VALUES (1)');
        },
        { isolation: 'serializable', maxRetries: 0 },
      );
    const results = await Promise.allSettled([once(), once()]);
    const failures = results.filter((result) => result.status === 'rejected');
    expect(failures).toHaveLength(1);
    expect((failures[0] as PromiseRejectedResult).reason).toBeInstanceOf(TransactionRetryError);
  });

  it('lends pg.Pool-style clients with release()', async () => {
    const client = await pool.connect();
    const replicaClient = await pool.connect({ role: 'replica' });
    try {
      const primary = await client.query('SELECT pg_is_in_recovery() AS r');
      const replica = await replicaClient.query('SELECT pg_is_in_recovery() AS r');
      expect([primary.rows[0]!.r, replica.rows[0]!.r]).toEqual([false, true]);
    } finally {
      client.release();
      replicaClient.release(new Error('drop it'));
    }
    expect(pool.health().primary.stats.active).toBe(0);
  });

  it('spreads reads over replicas round robin, or to the least busy one', async () => {
    const second = await cluster.addReplica();
    for (const loadBalancing of ['round-robin', 'least-busy'] as const) {
      const spread = createPgPool({
        primary: cluster.primaryUrl,
        replicas: [cluster.replicaUrl, second.url],
        loadBalancing,
        healthCheckIntervalMs: 100,
        pool: { max: 2 },
      });
      try {
        // A just-started replica is out of rotation until its WAL receiver streams.
        await sleep(300);
        await waitFor(() => spread.health().replicas.every((replica) => replica.healthy));
        const counts = new Map<number, number>();
        for (let index = 0; index < 20; index += 1) {
          const result = await spread.query<{ port: number }>('SELECT inet_server_port() AS port');
          const port = Number(result.rows[0]!.port);
          counts.set(port, (counts.get(port) ?? 0) + 1);
        }
        expect([...counts.keys()].sort()).toEqual([cluster.replicaPort, second.port].sort());
        // Alternating (a replica briefly out of rotation would shift a read or two).
        if (loadBalancing === 'round-robin') {
          for (const count of counts.values()) expect(count).toBeGreaterThanOrEqual(8);
        }
        // Least busy: 8 concurrent reads on max 2 each keep both replicas busy.
        const ports = await Promise.all(
          Array.from({ length: 8 }, () =>
            spread
              .query<{ port: number }>('SELECT inet_server_port() AS port, pg_sleep(0.05)')
              .then((result) => Number(result.rows[0]!.port)),
          ),
        );
        expect(new Set(ports).size).toBe(2);
      } finally {
        await spread.close();
      }
    }
  });

  it('keeps a bounded LRU of named prepared statements per connection', async () => {
    const small = createPgPool({ primary: cluster.primaryUrl, statementCacheSize: 3, pool: { max: 1 } });
    try {
      await small.withTransaction(async (tx) => {
        for (let index = 0; index < 6; index += 1) {
          const result = await tx.query(`SELECT $1::int + ${index} AS n`, [1]);
          expect(result.rows[0]!.n).toBe(1 + index);
        }
        await tx.query('SELECT $1::int + 5 AS n', [2]);
        await tx.query('SELECT $1::int + 5 AS n', [3]);
        const prepared = await tx.query<{ statement: string }>(
          "SELECT statement FROM pg_prepared_statements WHERE name LIKE 'noa_s%' ORDER BY statement",
        );
        expect(prepared.rows.length).toBeLessThanOrEqual(3);
        expect(prepared.rows.map((row) => row.statement)).toContain('SELECT $1::int + 5 AS n');
      });
    } finally {
      await small.close();
    }
  });
});
