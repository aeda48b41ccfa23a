import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How to start one private server process. */
export interface ServerCommand {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this OS user (PostgreSQL refuses to run as root). */
  user?: OsUser;
}

/** A numeric OS identity for `spawn`'s `uid`/`gid` options. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks up an OS user's uid and gid with `id`, e.g. `postgres`. */
export async function osUser(name: string): Promise<OsUser> {
  const [uid, gid] = await Promise.all([
    run('id', ['-u', name]).then(({ stdout }) => Number(stdout.trim())),
    run('id', ['-g', name]).then(({ stdout }) => Number(stdout.trim())),
  ]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`no OS user ${name}`);
  return { name, uid, gid };
}

/** Runs a command to completion (as `user` if given) and returns its stdout. */
export async function runAs(user: OsUser | undefined, command: string, args: string[]): Promise<string> {
  const { stdout } = await run(command, args, {
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

const live = new Set<ServerProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

/**
 * A test that never reaches its `stop()` must not leave servers running, nor their data in
 * /tmp, after the test process exits: kill every live server group, then remove the dirs.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const server of live) server.signal('SIGKILL');
    for (const dir of tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // A process killed a moment ago may still be writing; /tmp is cleaned eventually.
      }
    }
  });
}

/** Removes `dir` (a private server's data) when the test process exits. */
export function removeAtExit(dir: string): void {
  tempDirs.add(dir);
  installExitHook();
}

/**
 * One server process in its own process group (spawned detached), so that signals reach the
 * server and every worker it forked: SIGKILL of a PostgreSQL postmaster alone would leave its
 * backends holding the shared memory. The handle does not keep the test process alive.
 */
export class ServerProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';

  constructor(private readonly spec: ServerCommand) {}

  /** Spawns the process; the caller waits for readiness. */
  start(): void {
    if (this.running) throw new Error(`${this.spec.command} is already running`);
    this.output = '';
    const child = spawn(this.spec.command, this.spec.args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.spec.env ?? process.env,
      ...(this.spec.cwd ? { cwd: this.spec.cwd } : {}),
      ...(this.spec.user ? { uid: this.spec.user.uid, gid: this.spec.user.gid } : {}),
    });
    const keep = (chunk: Buffer) => {
      // Only the tail matters, for error messages when a start fails.
      this.output = (this.output + chunk.toString()).slice(-4_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    // Piped stdio are sockets; unref them too, or they keep the test process alive.
    (child.stdout as Socket | null)?.unref();
    (child.stderr as Socket | null)?.unref();
    child.unref();
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(this);
        resolve();
      });
      child.once('error', (error) => {
        this.output += String(error);
        live.delete(this);
        resolve();
      });
    });
    this.child = child;
    live.add(this);
    installExitHook();
  }

  /** True while the process has not exited. */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The process id of the group leader, while running. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  /** The last few kB the process printed: shown when it fails to start. */
  get recentOutput(): string {
    return this.output;
  }

  /** Sends `signal` to the whole process group; a no-op once the process has exited. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined || !this.running) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is already gone.
    }
  }

  /**
   * Resolves when the process and the rest of its group have exited (the group wait is bounded
   * by 5 s): a wrapper script such as rabbitmq-server exits before the VM it started, whose
   * port would otherwise still answer a moment after `kill()`.
   */
  async waitExit(): Promise<void> {
    // The child is unref'd, so a script awaiting its exit needs something holding the loop open.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      await this.exited;
      const pid = this.child?.pid;
      const deadline = Date.now() + 5_000;
      while (pid !== undefined && groupAlive(pid) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Sends `signal`, waits up to `graceMs` for the exit, then SIGKILLs the group. */
  async terminate(signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
      timer.unref();
    });
    const late = await Promise.race([this.waitExit().then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.signal('SIGKILL');
      await this.waitExit();
    }
  }
}

/** True while some process of group `pgid` exists. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` every `intervalMs` until it resolves true, or throws after `timeoutMs`. */
export async function pollUntil(
  what: string,
  probe: () => Promise<boolean>,
  {
    timeoutMs = 30_000,
    intervalMs = 100,
    alive,
  }: { timeoutMs?: number; intervalMs?: number; alive?: () => boolean } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    if (alive && !alive()) throw new Error(`${what}: the process exited while starting`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`);
}
