import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { portFree, restartablePort, waitForPort } from './ports.js';
import { removeAtExit, ServerProcess } from './server-process.js';

const run = promisify(execFile);

/** A redis-server owned by one test, on a restartable port, that the test may pause, kill or restart. */
export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** `CLIENT PAUSE <ms> ALL`: the server accepts connections but answers nothing for `ms`. */
  pause(ms: number): Promise<void>;
  /** SIGKILL: the server is gone at once, without saving. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the process is frozen (connections hang) until resumed. */
  freeze(): void;
  resume(): void;
  /** Starts the server again on the same port (after `kill` or `stop`). */
  restart(): Promise<void>;
  /** Graceful shutdown and removal of its directory. */
  stop(): Promise<void>;
  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout.trim();
}

/** Starts a private redis-server (extra args e.g. `['--appendonly', 'yes']`). */
export async function startPrivateRedis(extraArgs: string[] = []): Promise<PrivateRedis> {
  // Below the ephemeral range: a restart is on the same port, which no listen(0) or connection of
  // another test can be given meanwhile (see restartablePort).
  const port = await restartablePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-redis-'));
  removeAtExit(dir);
  // Its own process group, killed when the test process exits even if `stop()` never ran.
  const server = new ServerProcess({
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...extraArgs],
  });

  const start = async () => {
    // `stop()` removed the directory; a restart after it gets a fresh one.
    await mkdir(dir, { recursive: true });
    // Another process on the port would answer for this server.
    if (!(await portFree(port)))
      throw new Error(
        `private redis: port ${port} is taken by another process; redis-server cannot listen there`,
      );
    server.start();
    await waitForPort(port);
    // A fresh server can accept TCP before it loads; PING until it answers.
    for (let attempt = 0; attempt < 100; attempt += 1) {
      if ((await redisCli(port, 'ping').catch(() => '')) === 'PONG') return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const stop = async () => {
    await server.terminate('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pause: async (ms) => {
      await redisCli(port, 'client', 'pause', String(ms), 'ALL');
    },
    kill: async () => {
      server.signal('SIGKILL');
      await server.waitExit();
    },
    freeze: () => {
      server.signal('SIGSTOP');
    },
    resume: () => {
      server.signal('SIGCONT');
    },
    restart: start,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * {@link startPrivateRedis} for a test file that needs one: `{ redis }` when it started, else
 * `{ skip }`, the reason (also printed: `skipped: no redis-server binary …`) for `describe.skipIf`.
 */
export async function startPrivateRedisOrSkip(
  extraArgs: string[] = [],
): Promise<{ redis: PrivateRedis; skip?: undefined } | { redis?: undefined; skip: string }> {
  try {
    return { redis: await startPrivateRedis(extraArgs) };
  } catch (error) {
    const skip = `skipped: no redis-server binary to start a private Redis (${(error as Error).message})`;
    console.log(skip);
    return { skip };
  }
}
