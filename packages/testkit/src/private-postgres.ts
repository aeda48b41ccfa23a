import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sparePort } from './ports.js';
import { type OsUser, osUser, pollUntil, removeAtExit, runAs, ServerProcess } from './server-process.js';

/**
 * Signals the postmaster's backends. Signalling the process group is not enough: every
 * backend calls setsid() and leaves the postmaster's group, so a frozen or killed cluster would
 * keep answering on connections already open.
 */
function signalBackends(dataDir: string, signal: NodeJS.Signals): void {
  let postmaster: number;
  try {
    postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  let children = '';
  try {
    children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' });
  } catch {
    // no children, or ps found none
  }
  for (const pid of children.split('\n').map((line) => Number(line.trim()))) {
    if (pid <= 0) continue;
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

/** Options of {@link startPrivatePostgres}. */
export interface PrivatePostgresOptions {
  /**
   * Start a streaming replica of this server (a private one, or a `postgres://` URL of a
   * server that allows replication connections) instead of a fresh cluster: the data directory
   * comes from `pg_basebackup -R`.
   */
  replicaOf?: PrivatePostgres | string;
  /** Extra `-c name=value` server settings, e.g. `{ max_connections: '20' }`. */
  settings?: Record<string, string>;
  /** Directory with initdb/postgres/pg_ctl; default: the newest /usr/lib/postgresql/<v>/bin, or $PG_BIN_DIR / $PG_BINDIR. */
  binDir?: string;
  /** Milliseconds to wait for the server to accept connections; default 60 000. */
  startTimeoutMs?: number;
}

/** A PostgreSQL cluster owned by one test, on a spare port, that it may stop, kill and start again. */
export interface PrivatePostgres {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth: no password). */
  readonly url: string;
  /** The data directory (owned by the `postgres` OS user when the tests run as root). */
  readonly dataDir: string;
  /** True for a streaming replica that has not been promoted. */
  readonly isReplica: boolean;
  /** Starts the server again after `stop()` or `kill()`; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Fast shutdown (SIGINT: clients are disconnected, a checkpoint is written); keeps the data. */
  stop(): Promise<void>;
  /** Immediate crash: SIGKILL to the postmaster and every backend; `start()` then runs crash recovery. */
  kill(): Promise<void>;
  /** SIGSTOP to every process of the cluster: connections open but nothing answers until `resume()`. */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  resume(): void;
  /** Starts a streaming replica of this server (pg_basebackup -R) on another spare port. */
  createReplica(options?: Omit<PrivatePostgresOptions, 'replicaOf'>): Promise<PrivatePostgres>;
  /** Promotes a replica to a primary (`pg_ctl promote -w`). */
  promote(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The newest Debian PostgreSQL binaries directory, e.g. /usr/lib/postgresql/15/bin. */
export function postgresBinDir(): string {
  // PG_BINDIR is what `scripts/services env` exports.
  const fromEnv = process.env.PG_BIN_DIR || process.env.PG_BINDIR;
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(path.join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error(`no PostgreSQL binaries under ${root} (set PG_BINDIR)`);
  return path.join(root, versions[0], 'bin');
}

/** Where to connect for a `replicaOf` given as URL or private server. */
function primaryConnection(replicaOf: PrivatePostgres | string): string {
  return typeof replicaOf === 'string' ? replicaOf : replicaOf.url;
}

/**
 * Starts a private PostgreSQL cluster (initdb, trust auth on 127.0.0.1, wal_level=replica,
 * fsync off) or, with `replicaOf`, a streaming replica. PostgreSQL refuses to run as root, so
 * when the tests run as root every binary runs as the `postgres` OS user, in a directory under
 * the system temp dir owned by it. Takes about 1–2 s (initdb dominates); a replica about as long.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const binDir = options.binDir ?? postgresBinDir();
  const bin = (name: string) => path.join(binDir, name);
  const user: OsUser | undefined = process.getuid?.() === 0 ? await osUser('postgres') : undefined;
  const port = await sparePort();
  const root = await mkdtemp(path.join(tmpdir(), 'noa-pg-'));
  removeAtExit(root);
  if (user) await chown(root, user.uid, user.gid);
  const dataDir = path.join(root, 'data');

  if (options.replicaOf) {
    await runAs(user, bin('pg_basebackup'), [
      '-d',
      primaryConnection(options.replicaOf),
      '-D',
      dataDir,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
  } else {
    await runAs(user, bin('initdb'), [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '--no-instructions',
      '--no-locale',
      '--encoding=UTF8',
    ]);
  }

  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: '127.0.0.1',
    unix_socket_directories: root,
    wal_level: 'replica',
    max_wal_senders: '10',
    hot_standby: 'on',
    fsync: 'off',
    full_page_writes: 'off',
    ...options.settings,
  };
  const server = new ServerProcess({
    command: bin('postgres'),
    args: ['-D', dataDir, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])],
    ...(user ? { user } : {}),
  });
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  let isReplica = Boolean(options.replicaOf);

  const start = async () => {
    server.start();
    try {
      await pollUntil(
        `private postgres on port ${port}`,
        async () => {
          await runAs(user, bin('pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]);
          return true;
        },
        { timeoutMs: startTimeoutMs, alive: () => server.running },
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${server.recentOutput}`);
    }
  };
  const stop = () => server.terminate('SIGINT');
  await start();

  const handle: PrivatePostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    get isReplica() {
      return isReplica;
    },
    start,
    stop,
    kill: async () => {
      signalBackends(dataDir, 'SIGKILL');
      server.signal('SIGKILL');
      await server.waitExit();
    },
    freeze: () => {
      signalBackends(dataDir, 'SIGSTOP');
      server.signal('SIGSTOP');
    },
    resume: () => {
      server.signal('SIGCONT');
      signalBackends(dataDir, 'SIGCONT');
    },
    createReplica: (replicaOptions = {}) =>
      startPrivatePostgres({ binDir, ...replicaOptions, replicaOf: handle }),
    promote: async () => {
      await runAs(user, bin('pg_ctl'), ['promote', '-w', '-D', dataDir]);
      isReplica = false;
    },
    destroy: async () => {
      await stop();
      await rm(root, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]: () => handle.destroy(),
  };
  return handle;
}
