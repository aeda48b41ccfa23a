import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sparePort } from '@noa/testkit';

const run = promisify(execFile);

/** Where Debian installs the Postgres 15 server binaries. */
export const pgBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** A private Postgres primary plus a streaming replica, owned by one test file. */
export interface PrivatePgCluster {
  readonly primaryUrl: string;
  readonly replicaUrl: string;
  readonly primaryPort: number;
  readonly replicaPort: number;
  /** `pg_ctl stop -m immediate` (or `fast`) of the primary. */
  stopPrimary(mode?: 'immediate' | 'fast'): Promise<void>;
  startPrimary(): Promise<void>;
  stopReplica(mode?: 'immediate' | 'fast'): Promise<void>;
  startReplica(): Promise<void>;
  /** Stops applying WAL on the replica (it keeps receiving it): replication lag grows. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** SIGSTOP the primary's postmaster and its backends: connections stay open, nothing answers. */
  freezePrimary(): Promise<void>;
  /** SIGCONT what `freezePrimary` stopped. */
  thawPrimary(): Promise<void>;
  /** `pg_ctl promote`: the replica becomes a primary (for failover tests). */
  promoteReplica(): Promise<void>;
  /** Stops both servers and deletes their directories. */
  destroy(): Promise<void>;
}

/** Why the private cluster cannot be started here, or undefined when it can. */
export function privatePgSkipReason(): string | undefined {
  if (!existsSync(path.join(pgBin, 'initdb'))) return `skipped: no Postgres server binaries at ${pgBin}`;
  try {
    execFileSync('id', ['-u', 'postgres']);
  } catch {
    return 'skipped: no postgres OS user to run a private Postgres cluster';
  }
  return undefined;
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/**
 * initdb + start a primary (wal_level=replica, trust auth on 127.0.0.1), pg_basebackup -R a
 * replica and start it; both on spare ports, run as the `postgres` OS user (Postgres refuses
 * root), in a temporary directory that user owns. Takes a few seconds.
 */
export async function startPrivatePgCluster(): Promise<PrivatePgCluster> {
  const ids = process.getuid?.() === 0 ? postgresIds() : undefined;
  const asPostgres = (bin: string, args: string[]) =>
    run(path.join(pgBin, bin), args, { ...(ids ?? {}), cwd: tmpdir(), env: { ...process.env, LC_ALL: 'C' } });
  const root = await mkdtemp(path.join(tmpdir(), 'noa-pg-'));
  if (ids) await chown(root, ids.uid, ids.gid);
  const primaryDir = path.join(root, 'primary');
  const replicaDir = path.join(root, 'replica');
  const [primaryPort, replicaPort] = [await sparePort(), await sparePort()];

  await asPostgres('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  await appendFile(
    path.join(primaryDir, 'postgresql.conf'),
    [
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${root}'`,
      'wal_level = replica',
      'max_wal_senders = 5',
      'hot_standby = on',
      'fsync = off',
      'full_page_writes = off',
      'shared_buffers = 16MB',
      'max_connections = 60',
      'wal_receiver_status_interval = 1s',
      '',
    ].join('\n'),
  );
  await appendFile(
    path.join(primaryDir, 'pg_hba.conf'),
    'host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n',
  );
  const start = (dir: string, port: number) =>
    asPostgres('pg_ctl', [
      '-D',
      dir,
      '-l',
      path.join(root, `${port}.log`),
      '-o',
      `-p ${port}`,
      '-w',
      '-t',
      '30',
      'start',
    ]);
  const stop = (dir: string, mode: string) =>
    asPostgres('pg_ctl', ['-D', dir, '-m', mode, '-w', '-t', '30', 'stop']).then(
      () => {},
      () => {},
    );
  await start(primaryDir, primaryPort);
  await asPostgres('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primaryPort),
    '-U',
    'postgres',
    '-D',
    replicaDir,
    '-R',
    '-X',
    'stream',
    '--checkpoint=fast',
    '--no-sync',
  ]);
  await start(replicaDir, replicaPort);

  const psql = async (port: number, sql: string) => {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };

  // The postmaster this harness started (first line of postmaster.pid) and its children.
  const primaryProcesses = async (): Promise<number[]> => {
    const postmaster = Number(
      (await readFile(path.join(primaryDir, 'postmaster.pid'), 'utf8')).split('\n')[0],
    );
    const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(postmaster)]).catch(() => ({
      stdout: '',
    }));
    const children = stdout
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((pid) => pid > 0);
    return [postmaster, ...children];
  };
  const signalPrimary = async (signal: NodeJS.Signals) => {
    for (const pid of await primaryProcesses()) {
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  };

  return {
    freezePrimary: () => signalPrimary('SIGSTOP'),
    thawPrimary: () => signalPrimary('SIGCONT'),
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${replicaPort}/postgres`,
    primaryPort,
    replicaPort,
    stopPrimary: (mode = 'immediate') => stop(primaryDir, mode),
    startPrimary: async () => {
      await start(primaryDir, primaryPort);
    },
    stopReplica: (mode = 'immediate') => stop(replicaDir, mode),
    startReplica: async () => {
      await start(replicaDir, replicaPort);
    },
    promoteReplica: async () => {
      await asPostgres('pg_ctl', ['-D', replicaDir, '-w', '-t', '30', 'promote']);
    },
    pauseReplay: () => psql(replicaPort, 'SELECT pg_wal_replay_pause()'),
    resumeReplay: () => psql(replicaPort, 'SELECT pg_wal_replay_resume()'),
    destroy: async () => {
      await Promise.all([stop(replicaDir, 'immediate'), stop(primaryDir, 'immediate')]);
      await rm(root, { recursive: true, force: true });
    },
  };
}
