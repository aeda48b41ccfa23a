import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { portFree, restartablePort, waitForPort } from './ports.js';
import { removeAtExit, ServerProcess } from './server-process.js';

const run = promisify(execFile);

/** Options of {@link startPrivateRabbit}. */
export interface PrivateRabbitOptions {
  /** Directory holding rabbitmq-server and rabbitmqctl; default /usr/lib/rabbitmq/bin or $RABBITMQ_BIN_DIR. */
  binDir?: string;
  /** Milliseconds to wait for the AMQP listener; default 90 000 (the node boots in ~5–10 s on 2 cores). */
  startTimeoutMs?: number;
}

/** A second RabbitMQ node owned by one test, on restartable ports, that it may stop, kill and restart. */
export interface PrivateRabbit {
  /** The Erlang node name, `noa-<random>@localhost`. */
  readonly nodeName: string;
  /** The AMQP port (RABBITMQ_NODE_PORT). */
  readonly port: number;
  /** The Erlang distribution port (RABBITMQ_DIST_PORT). */
  readonly distPort: number;
  /** `amqp://guest:guest@127.0.0.1:<port>` (guest may log in from loopback). */
  readonly url: string;
  /**
   * Whether the node's process is alive (started, not stopped or killed): a test that failed
   * with the node stopped leaves it so, and the next case starts it again instead of waiting for it.
   */
  readonly running: boolean;
  /** Starts the node again after `stop()` or `kill()`; resolves once AMQP accepts connections. */
  start(): Promise<void>;
  /**
   * Graceful stop: SIGTERM, which the node takes as `init:stop()` (its applications stop in
   * order, clients are told, as with `rabbitmqctl stop`, without booting the CLI's own Erlang VM
   * first: a second or more on a busy machine). Keeps the data (durable queues survive).
   */
  stop(): Promise<void>;
  /** `stop()` then `start()` on the same ports and data. */
  restart(): Promise<void>;
  /** SIGKILL to the Erlang VM and its helpers: connections drop at once. */
  kill(): Promise<void>;
  /** SIGSTOP the node: sockets stay open but nothing answers until `resume()`. */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  resume(): void;
  /** Runs `rabbitmqctl -n <node> <args>` against this node and returns its output. */
  ctl(...args: string[]): Promise<string>;
  /** Kills the node (its data is not kept, so a graceful stop would be time lost) and removes its directory. */
  destroy(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts a private RabbitMQ node beside the shared one: its own node name, AMQP and
 * distribution ports, data and log directories, Erlang cookie (in a private HOME), no plugins
 * and empty config files, so nothing from /etc/rabbitmq applies. Runs as the current user
 * (root here; RabbitMQ allows it) with the package's scripts in /usr/lib/rabbitmq/bin, not
 * the /usr/sbin wrappers that switch to the `rabbitmq` user and its shared cookie.
 */
export async function startPrivateRabbit(options: PrivateRabbitOptions = {}): Promise<PrivateRabbit> {
  const binDir = options.binDir ?? process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
  const root = await mkdtemp(path.join(tmpdir(), 'noa-rabbit-'));
  removeAtExit(root);
  const nodeName = `noa-${randomBytes(4).toString('hex')}@localhost`;
  // Below the ephemeral range (so also below 55 525, where the dist port's +10 010, the range
  // rabbitmqctl derives from it, stays valid): the node is stopped and started again on them.
  const port = await restartablePort();
  const distPort = await restartablePort();

  await mkdir(path.join(root, 'mnesia'));
  await mkdir(path.join(root, 'log'));
  await writeFile(path.join(root, '.erlang.cookie'), randomBytes(16).toString('hex').toUpperCase(), {
    mode: 0o400,
  });
  await writeFile(path.join(root, 'enabled_plugins'), '[].\n');
  await writeFile(path.join(root, 'rabbitmq.conf'), '# private node: defaults only\n');
  await writeFile(path.join(root, 'rabbitmq-env.conf'), '');

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: root,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(root, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(root, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(root, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: path.join(root, 'rabbitmq.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(root, 'advanced.config'),
    RABBITMQ_CONF_ENV_FILE: path.join(root, 'rabbitmq-env.conf'),
    RABBITMQ_PID_FILE: path.join(root, 'rabbit.pid'),
  };
  const server = new ServerProcess({
    command: path.join(binDir, 'rabbitmq-server'),
    args: [],
    env,
    cwd: root,
  });
  const startTimeoutMs = options.startTimeoutMs ?? 90_000;

  const ctl = async (...args: string[]) => {
    const { stdout } = await run(path.join(binDir, 'rabbitmqctl'), ['-n', nodeName, ...args], {
      env,
      cwd: root,
      timeout: 60_000,
    });
    return stdout;
  };
  const start = async () => {
    // Taken while the node was stopped: the port would answer (another process) and pass for
    // the node's, which then fails to boot on eaddrinuse.
    for (const taken of [port, distPort])
      if (!(await portFree(taken)))
        throw new Error(
          `private rabbitmq ${nodeName}: port ${taken} is taken by another process; the node cannot listen there`,
        );
    server.start();
    try {
      await Promise.race([
        waitForPort(port, startTimeoutMs),
        server.waitExit().then(() => {
          throw new Error('rabbitmq-server exited while starting');
        }),
      ]);
    } catch (error) {
      server.signal('SIGKILL');
      throw new Error(`private rabbitmq ${nodeName}: ${(error as Error).message}\n${server.recentOutput}`);
    }
  };
  const stop = async () => {
    if (!server.running) return;
    // SIGCONT first (a frozen node), then SIGTERM; SIGKILL if it has not exited within 15 s.
    await server.terminate('SIGTERM', 15_000);
  };
  await start();

  const handle: PrivateRabbit = {
    nodeName,
    port,
    distPort,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    get running() {
      return server.running;
    },
    start,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    kill: async () => {
      server.signal('SIGKILL');
      await server.waitExit();
    },
    freeze: () => server.signal('SIGSTOP'),
    resume: () => server.signal('SIGCONT'),
    ctl,
    destroy: async () => {
      server.signal('SIGKILL');
      await server.waitExit();
      await rm(root, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]: () => handle.destroy(),
  };
  return handle;
}
