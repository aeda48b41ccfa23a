import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sparePort, waitForPort } from '@noa/testkit';

const run = promisify(execFile);
const mariadbd = process.env.MARIADBD ?? '/usr/sbin/mariadbd';
const installDb = process.env.MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db';

/** A private MariaDB primary plus a replica (binlog replication), owned by one test file. */
export interface PrivateMariadbReplication {
  readonly primaryUrl: string;
  readonly replicaUrl: string;
  /** Runs SQL on the replica as root (replication control). */
  onReplica(sql: string): Promise<void>;
  /** Stops both servers and deletes their data. */
  destroy(): Promise<void>;
}

/** Why a private MariaDB pair cannot run here, or undefined. */
export function privateMariadbSkipReason(): string | undefined {
  if (!existsSync(mariadbd) || !existsSync(installDb))
    return `skipped: no MariaDB server binaries at ${mariadbd}`;
  return undefined;
}

/**
 * One `mariadb-install-db`, copied for the replica; both servers on spare ports with
 * `--skip-grant-tables` (loopback only, throwaway data), the primary writing a binlog, the
 * replica replicating from it with GTID. A few seconds.
 */
export async function startPrivateMariadbReplication(): Promise<PrivateMariadbReplication> {
  const root = await mkdtemp(path.join(tmpdir(), 'noa-mariadb-'));
  const base = path.join(root, 'primary');
  await run(installDb, [
    '--no-defaults',
    `--datadir=${base}`,
    '--user=root',
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
    '--skip-name-resolve',
  ]);
  const replicaDir = path.join(root, 'replica');
  await cp(base, replicaDir, { recursive: true });
  const children: ChildProcess[] = [];
  const start = async (dir: string, serverId: number): Promise<number> => {
    const port = await sparePort();
    const child = spawn(
      mariadbd,
      [
        '--no-defaults',
        '--user=root',
        `--datadir=${dir}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--socket=${dir}.sock`,
        `--pid-file=${dir}.pid`,
        `--server-id=${serverId}`,
        `--log-bin=${dir}-bin`,
        `--log-error=${dir}.err`,
        '--skip-grant-tables',
        '--skip-name-resolve',
        '--innodb-buffer-pool-size=16M',
      ],
      { stdio: 'ignore' },
    );
    children.push(child);
    await waitForPort(port, 30_000);
    return port;
  };
  const [primaryPort, replicaPort] = await Promise.all([start(base, 1), start(replicaDir, 2)]);
  const { default: mysql } = await import('mysql2/promise');
  const onServer = async (port: number, sql: string) => {
    const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
    try {
      await conn.query(sql);
    } finally {
      await conn.end();
    }
  };
  await onServer(
    replicaPort,
    `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primaryPort}, MASTER_USER='root', MASTER_USE_GTID=slave_pos`,
  );
  await onServer(replicaPort, 'START SLAVE');
  return {
    primaryUrl: `mysql://root@127.0.0.1:${primaryPort}/`,
    replicaUrl: `mysql://root@127.0.0.1:${replicaPort}/`,
    onReplica: (sql) => onServer(replicaPort, sql),
    destroy: async () => {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      );
      await rm(root, { recursive: true, force: true });
    },
  };
}
