import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sparePort, waitForPort } from '@noa/testkit';

const run = promisify(execFile);
const bin = '/usr/lib/rabbitmq/bin';

/** A RabbitMQ node owned by one test (own name, ports, data dir, cookie; no plugins). */
export interface PrivateRabbitMq {
  readonly url: string;
  /** `rabbitmqctl stop`: a clean broker shutdown; data stays in its directory. */
  stop(): Promise<void>;
  /** Starts the node again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops the node and deletes its directory. */
  destroy(): Promise<void>;
}

/** Why a private node cannot be started here, or undefined when it can. */
export function privateRabbitMqUnavailable(): string | undefined {
  return existsSync(`${bin}/rabbitmq-server`) ? undefined : `no RabbitMQ server binaries in ${bin}`;
}

/**
 * Starts a private RabbitMQ node (a candidate for @noa/testkit, next to startPrivateRedis). It
 * boots in ~3 s on the CI machine.
 */
export async function startPrivateRabbitMq(): Promise<PrivateRabbitMq> {
  const port = await sparePort();
  const distPort = await sparePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-rabbitmq-'));
  const nodeName = `noa-test-${process.pid}-${port}@localhost`;
  await mkdir(path.join(dir, 'home'));
  await writeFile(path.join(dir, 'enabled_plugins'), '[].\n');
  const env = {
    ...process.env,
    HOME: path.join(dir, 'home'),
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: path.join(dir, 'pid'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'none'),
  };
  let child: ChildProcess | undefined;
  const exited = () =>
    new Promise<void>((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
    });
  const start = async () => {
    child = spawn(`${bin}/rabbitmq-server`, [], { env, cwd: dir, stdio: 'ignore' });
    await waitForPort(port, 60_000);
  };
  const stop = async () => {
    await run(`${bin}/rabbitmqctl`, ['-n', nodeName, 'stop'], { env }).catch(() => child?.kill('SIGKILL'));
    await exited();
  };
  await start();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    stop,
    start,
    destroy: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
