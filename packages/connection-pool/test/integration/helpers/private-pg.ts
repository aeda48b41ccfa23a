import { execFileSync } from 'node:child_process';
import { type PrivatePostgres, postgresBinDir, startPrivatePostgres } from '@noa/testkit';

/** A private Postgres primary plus a streaming replica (testkit's servers), owned by one test file. */
export interface PrivatePgCluster {
  readonly primaryUrl: string;
  readonly replicaUrl: string;
  readonly primaryPort: number;
  readonly replicaPort: number;
  /** Crash of the primary: SIGKILL to the postmaster and every backend (harsher than `pg_ctl stop -m immediate`). */
  killPrimary(): Promise<void>;
  startPrimary(): Promise<void>;
  /** Fast shutdown of the replica. */
  stopReplica(): Promise<void>;
  startReplica(): Promise<void>;
  /** Stops applying WAL on the replica (it keeps receiving it): replication lag grows. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** SIGSTOP the primary's postmaster and backends: connections stay open, nothing answers. */
  freezePrimary(): Promise<void>;
  thawPrimary(): Promise<void>;
  /** SIGSTOP the replica's postmaster and backends (a frozen reader). */
  freezeReplica(): Promise<void>;
  thawReplica(): Promise<void>;
  /** `pg_ctl promote`: the replica becomes a primary (for failover tests). */
  promoteReplica(): Promise<void>;
  /** Starts one more streaming replica (stopped by `destroy()` too). */
  addReplica(): Promise<{ url: string; port: number }>;
  /** Stops every server and deletes their directories. */
  destroy(): Promise<void>;
}

/** Why the private cluster cannot be started here, or undefined when it can. */
export function privatePgSkipReason(): string | undefined {
  try {
    postgresBinDir();
  } catch {
    return 'skipped: no Postgres server binaries (set PG_BINDIR)';
  }
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return 'skipped: no postgres OS user to run a private Postgres cluster';
    }
  }
  return undefined;
}

async function sql(server: PrivatePostgres, statement: string): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/** Starts a private primary and a `pg_basebackup -R` streaming replica of it on spare ports. */
export async function startPrivatePgCluster(): Promise<PrivatePgCluster> {
  const primary = await startPrivatePostgres({ settings: { wal_receiver_status_interval: '1s' } });
  let replica: PrivatePostgres;
  try {
    replica = await primary.createReplica();
  } catch (error) {
    await primary.destroy();
    throw error;
  }
  const extra: PrivatePostgres[] = [];
  return {
    addReplica: async () => {
      const more = await primary.createReplica();
      extra.push(more);
      return { url: more.url, port: more.port };
    },
    primaryUrl: primary.url,
    replicaUrl: replica.url,
    primaryPort: primary.port,
    replicaPort: replica.port,
    // testkit's kill()/freeze()/resume() signal the backends too, not only the postmaster.
    killPrimary: () => primary.kill(),
    startPrimary: () => primary.start(),
    stopReplica: () => replica.stop(),
    startReplica: () => replica.start(),
    pauseReplay: () => sql(replica, 'SELECT pg_wal_replay_pause()'),
    resumeReplay: () => sql(replica, 'SELECT pg_wal_replay_resume()'),
    freezePrimary: async () => primary.freeze(),
    thawPrimary: async () => primary.resume(),
    freezeReplica: async () => replica.freeze(),
    thawReplica: async () => replica.resume(),
    promoteReplica: () => replica.promote(),
    destroy: async () => {
      await Promise.allSettled([...extra, replica].map((server) => server.destroy()));
      await primary.destroy();
    },
  };
}
