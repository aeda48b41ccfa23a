import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sparePort, waitForPort } from '@noa/testkit';
import { waitFor } from './wait.js';

/** The state letter of /proc/<pid>/stat (after the parenthesised command name). */
function stateOf(stat: string): string | undefined {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

/** The FerretDB binary `scripts/services` builds (MongoDB wire protocol over SQLite). */
const ferretdb =
  process.env.FERRETDB_BIN ?? path.resolve(import.meta.dirname, '../../../../../.services/mongo/ferretdb');
const mainCheckoutFerretdb = '/work/main/.services/mongo/ferretdb';

function binary(): string | undefined {
  if (existsSync(ferretdb)) return ferretdb;
  if (existsSync(mainCheckoutFerretdb)) return mainCheckoutFerretdb;
  return undefined;
}

/** A FerretDB owned by one test, on a spare port, that the test may kill and restart. */
export interface PrivateFerretdb {
  readonly url: string;
  /** SIGKILL: the server is gone at once; its clients see their sockets reset. */
  kill(): Promise<void>;
  /**
   * SIGSTOP / SIGCONT: connections stay open but nothing answers until resumed. Resolves once
   * the kernel reports the process stopped (the signal is delivered asynchronously).
   */
  freeze(): Promise<void>;
  resume(): void;
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>;
  /** Kills it and deletes its data. */
  stop(): Promise<void>;
}

/** Why a private FerretDB cannot run here, or undefined. */
export function privateFerretdbSkipReason(): string | undefined {
  if (binary() === undefined)
    return `skipped: no FerretDB binary (set FERRETDB_BIN or run scripts/services up mongo): ${ferretdb}`;
  return undefined;
}

/** Starts a private FerretDB (`-listen 127.0.0.1:<spare port> -dir <tmp>`). */
export async function startPrivateFerretdb(database: string): Promise<PrivateFerretdb> {
  const command = binary();
  if (command === undefined) throw new Error(privateFerretdbSkipReason());
  const port = await sparePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-ferretdb-'));
  let child: ChildProcess | undefined;
  // A test that never reaches stop() must not leave the server running.
  const killAtExit = () => {
    if (child?.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  };
  process.once('exit', killAtExit);

  const start = async () => {
    const started = spawn(command, ['-listen', `127.0.0.1:${port}`, '-dir', dir], { stdio: 'ignore' });
    started.unref();
    child = started;
    await waitForPort(port);
  };
  const kill = async () => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    running.kill('SIGCONT');
    await exited;
  };

  await start();
  return {
    url: `mongodb://127.0.0.1:${port}/${database}`,
    kill,
    freeze: async () => {
      const pid = child?.pid;
      if (pid === undefined) return;
      process.kill(pid, 'SIGSTOP');
      await waitFor(async () => stateOf(await readFile(`/proc/${pid}/stat`, 'utf8')) === 'T');
    },
    resume: () => child?.kill('SIGCONT'),
    restart: start,
    stop: async () => {
      await kill();
      process.off('exit', killAtExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
