import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { portFree, restartablePort } from './ports.js';
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

/**
 * How many processes still have the shared memory segment of the cluster's last postmaster
 * attached (0 once it is gone). A postmaster refuses to start while any process of the old one
 * holds it ("pre-existing shared memory block is still in use"), and a SIGKILLed backend, or
 * one forked just before the kill, may take a moment to exit.
 */
function sharedMemoryAttached(dataDir: string): number {
  let shmid: string | undefined;
  try {
    // Line 7 of postmaster.pid: "<key> <shmid>".
    shmid = readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[6]?.trim().split(/\s+/)[1];
    if (!shmid) return 0;
  } catch {
    return 0;
  }
  let table: string;
  try {
    table = readFileSync('/proc/sysvipc/shm', 'utf8');
  } catch {
    return 0; // not Linux: nothing to wait on here
  }
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === shmid) return Number(fields[6]);
  }
  return 0;
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

/** A PostgreSQL cluster owned by one test, on a restartable port, that it may stop, kill and start again. */
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
  /** Starts a streaming replica of this server (pg_basebackup -R) on another restartable port. */
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

/** The initdb options of every private cluster (its settings are given at start, not here). */
const initdbOptions = [
  '-U',
  'postgres',
  '--auth=trust',
  '--no-sync',
  '--no-instructions',
  '--no-locale',
  '--encoding=UTF8',
];

/** Template data directories being made or found by this process, by path. */
const templates = new Map<string, Promise<string>>();

/**
 * A data directory fresh from initdb, made once and copied for each new cluster: initdb takes
 * 1–3 s of a loaded machine, a copy of its 40 MB about a tenth of that. It lives under the system
 * temp dir, named for the binaries and the OS user, and is shared by every test process (test
 * files running side by side, and later runs): made in a directory of its own, then renamed into
 * place in one step, so nobody copies a half-made one (when two make it at once, one rename wins
 * and the other's copy is deleted). Never started, so never changed; delete it to have it made
 * again.
 */
function templateDataDir(binDir: string, user: OsUser | undefined): Promise<string> {
  const key = createHash('sha256')
    .update(`${binDir}\0${initdbOptions.join(' ')}`)
    .digest('hex')
    .slice(0, 12);
  const template = path.join(tmpdir(), `noa-pg-template-${key}-${user?.uid ?? process.getuid?.() ?? 'user'}`);
  let made = templates.get(template);
  if (made === undefined) {
    made = (async () => {
      if (existsSync(path.join(template, 'PG_VERSION'))) return template;
      const building = await mkdtemp(path.join(tmpdir(), 'noa-pg-template-build-'));
      removeAtExit(building);
      try {
        if (user) await chown(building, user.uid, user.gid);
        await runAs(user, path.join(binDir, 'initdb'), ['-D', path.join(building, 'data'), ...initdbOptions]);
        await rename(path.join(building, 'data'), template).catch((error: NodeJS.ErrnoException) => {
          // Another process put its template there first: use that one.
          if (!existsSync(path.join(template, 'PG_VERSION'))) throw error;
        });
      } finally {
        await rm(building, { recursive: true, force: true });
      }
      return template;
    })();
    // A failed attempt is not kept: the next cluster tries again.
    made.catch(() => templates.delete(template));
    templates.set(template, made);
  }
  return made;
}

/** Where to connect for a `replicaOf` given as URL or private server. */
function primaryConnection(replicaOf: PrivatePostgres | string): string {
  return typeof replicaOf === 'string' ? replicaOf : replicaOf.url;
}

/**
 * Starts a private PostgreSQL cluster (initdb, trust auth on 127.0.0.1, wal_level=replica,
 * fsync off) or, with `replicaOf`, a streaming replica. PostgreSQL refuses to run as root, so
 * when the tests run as root every binary runs as the `postgres` OS user, in a directory under
 * the system temp dir owned by it. The data directory is a copy of one initdb made once per machine
 * (see `templateDataDir`), so a start takes a few hundred ms; a replica (pg_basebackup) about as long.
 */
export async function startPrivatePostgres(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
  const binDir = options.binDir ?? postgresBinDir();
  const bin = (name: string) => path.join(binDir, name);
  const user: OsUser | undefined = process.getuid?.() === 0 ? await osUser('postgres') : undefined;
  // Below the ephemeral range: start() after a stop or kill is on the same port, which no
  // listen(0) or connection of another test can be given meanwhile (see restartablePort).
  const port = await restartablePort();
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
    // initdb's output, copied (as the cluster's OS user: the copy is its own, mode 0700 kept).
    await runAs(user, 'cp', ['-a', await templateDataDir(binDir, user), dataDir]);
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
    // Another process on the port would answer pg_isready for this server.
    if (!(await portFree(port)))
      throw new Error(
        `private postgres: port ${port} is taken by another process; postgres cannot listen there`,
      );
    // The processes of a killed cluster must be gone first, or the new postmaster exits.
    await pollUntil(
      `private postgres on port ${port}: old backends to exit`,
      async () => sharedMemoryAttached(dataDir) === 0,
      {
        timeoutMs: startTimeoutMs,
        intervalMs: 20,
      },
    );
    server.start();
    try {
      await pollUntil(
        `private postgres on port ${port}`,
        async () => {
          await runAs(user, bin('pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]);
          return true;
        },
        { timeoutMs: startTimeoutMs, intervalMs: 50, alive: () => server.running },
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
      // Stopped first, the postmaster forks no backend that the list below would miss.
      server.signal('SIGSTOP');
      signalBackends(dataDir, 'SIGKILL');
      server.signal('SIGKILL');
      await server.waitExit();
      // A killed process may still hold the shared memory for a moment; "killed" means gone.
      await pollUntil(
        `private postgres on port ${port}: killed backends to exit`,
        async () => sharedMemoryAttached(dataDir) === 0,
        {
          timeoutMs: 30_000,
          intervalMs: 20,
        },
      );
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
