import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Redis, RedisOptions } from 'ioredis';
import { portFree, restartablePort, sparePort, waitForPort } from './ports.js';
import { pollUntil, removeAtExit, ServerProcess } from './server-process.js';

const run = promisify(execFile);

/** The master name the sentinels monitor (ioredis's `name` option). */
const masterName = 'noa-master';

/** How long a sentinel waits before it calls a silent master down: small, so a crash fails over fast. */
const downAfterMs = 1_000;

/**
 * A Sentinel-managed Redis owned by one test file: a master, one replica and one or three
 * sentinels, each on a spare port, each its own process.
 */
export interface PrivateSentinel {
  /** The sentinels' addresses (ioredis's `sentinels` option). */
  readonly sentinels: { host: string; port: number }[];
  /** The master name the sentinels monitor (ioredis's `name` option). */
  readonly name: string;
  /** The port of the server the sentinels call master now (asked of a sentinel). */
  masterPort(): Promise<number>;
  /**
   * `SENTINEL FAILOVER`: the replica is promoted without a crash. Resolves, with the new master's
   * port, once the sentinels report it and it answers `ROLE` as master, and the old master
   * follows it with its link up (so another failover can follow).
   */
  failover(): Promise<number>;
  /**
   * SIGKILL of the master (nothing saved), then waits for the sentinels to promote the replica
   * (`down-after-milliseconds` is 1 s) and for it to answer as master. The killed server is
   * started again as a replica of the new one (replica-priority 0 until its link is up, so no
   * failover can promote it empty), its link up, before this resolves, so another failover can
   * follow; rejects if the sentinels name another master by then. Resolves with the new master's port and the ms from the kill until the
   * new master answered as master.
   */
  killMaster(): Promise<{ port: number; promotedAfterMs: number }>;
  /** An ioredis client that finds the master through the sentinels (`error` events swallowed). */
  client(options?: RedisOptions): Redis;
  /** Stops every server and sentinel and removes their directories. */
  stop(): Promise<void>;
  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout.trim();
}

/** One redis-server (data or sentinel) with the port it listens on. */
interface Node {
  port: number;
  process: ServerProcess;
}

/**
 * Starts a master, one replica (link up) and `sentinelCount` sentinels (1 or 3; the quorum is a
 * majority) monitoring them with `down-after-milliseconds` 1 s, and resolves once every sentinel
 * knows the replica and the other sentinels.
 */
export async function startPrivateSentinel({
  sentinelCount = 1,
}: {
  sentinelCount?: 1 | 3;
} = {}): Promise<PrivateSentinel> {
  // Loaded here, not at the top: testkit's modules import client libraries lazily.
  const { Redis: RedisClient } = await import('ioredis');
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-sentinel-'));
  removeAtExit(dir);
  const data: Node[] = [];
  const sentinelNodes: Node[] = [];
  const stop = async () => {
    await Promise.all(
      [...sentinelNodes, ...data].map(async (node) => {
        node.process.signal('SIGKILL');
        await node.process.waitExit();
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };

  const dataArgs = (port: number, replicaOf?: number) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    path.join(dir, String(port)),
    '--save',
    '',
    '--appendonly',
    'no',
    // A replica's full sync (each failover, and the killed master's return) starts at once, not
    // after the default 5 s wait for more replicas to share it: there is only one.
    '--repl-diskless-sync-delay',
    '0',
    ...(replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)]),
  ];
  const startData = async (port: number, replicaOf?: number, extra: string[] = []): Promise<Node> => {
    await mkdir(path.join(dir, String(port)), { recursive: true });
    // Another process on the port (a killed master's, taken meanwhile) would answer for this one.
    if (!(await portFree(port)))
      throw new Error(
        `private sentinel: port ${port} is taken by another process; redis-server cannot listen there`,
      );
    const process = new ServerProcess({
      command: 'redis-server',
      args: [...dataArgs(port, replicaOf), ...extra],
    });
    process.start();
    await waitForPort(port);
    return { port, process };
  };
  // 40 s: a full sync takes under a second here (no diskless-sync delay, see dataArgs), but two test files
  // at a time on a loaded 2-core machine once took longer than 20 s (CI, 2026-12-06); on a
  // timeout the replica's own view of its link and its log are in the error.
  const linkUp = async (port: number) => {
    try {
      await pollUntil(
        `replica ${port} in sync`,
        async () => (await redisCli(port, 'info', 'replication')).includes('master_link_status:up'),
        { timeoutMs: 40_000, intervalMs: 50 },
      );
    } catch (error) {
      const info = await redisCli(port, 'info', 'replication').catch((failure: unknown) => String(failure));
      const output = data.find((node) => node.port === port)?.process.recentOutput ?? '';
      throw new Error(`${(error as Error).message}\n${info}\n${output.slice(-2_000)}`);
    }
  };
  const askMaster = async (): Promise<number> => {
    for (const sentinel of sentinelNodes) {
      const reply = await redisCli(sentinel.port, 'sentinel', 'get-master-addr-by-name', masterName).catch(
        () => '',
      );
      const port = Number(reply.split('\n')[1]);
      if (Number.isInteger(port) && port > 0) return port;
    }
    throw new Error('no sentinel named a master');
  };
  const isMaster = async (port: number) => (await redisCli(port, 'role')).split('\n')[0] === 'master';
  /** Resolves once every live sentinel names a master other than `old` and that server is master. */
  const promoted = async (old: number, timeoutMs: number): Promise<number> => {
    let master = old;
    await pollUntil(
      `a master other than ${old}`,
      async () => {
        const named = await Promise.all(
          sentinelNodes.map(async (sentinel) =>
            Number(
              (await redisCli(sentinel.port, 'sentinel', 'get-master-addr-by-name', masterName)).split(
                '\n',
              )[1],
            ),
          ),
        );
        master = named[0]!;
        return master !== old && named.every((port) => port === master) && (await isMaster(master));
      },
      { timeoutMs, intervalMs: 50 },
    );
    return master;
  };

  try {
    // Below the ephemeral range: killMaster() starts the killed server again on its port, which
    // no listen(0) or connection of another test can be given meanwhile (see restartablePort).
    const masterPort = await restartablePort();
    const replicaPort = await restartablePort();
    data.push(await startData(masterPort));
    data.push(await startData(replicaPort, masterPort));
    await linkUp(replicaPort);

    const quorum = sentinelCount === 1 ? 1 : 2;
    for (let index = 0; index < sentinelCount; index += 1) {
      const port = await sparePort();
      const sentinelDir = path.join(dir, `sentinel-${port}`);
      await mkdir(sentinelDir, { recursive: true });
      // The sentinel rewrites its config file (what it learns), so each has its own.
      const config = path.join(sentinelDir, 'sentinel.conf');
      await writeFile(
        config,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${sentinelDir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} ${quorum}`,
          `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const process = new ServerProcess({ command: 'redis-server', args: [config, '--sentinel'] });
      process.start();
      sentinelNodes.push({ port, process });
    }
    await Promise.all(sentinelNodes.map((node) => waitForPort(node.port)));
    // Every sentinel must know the replica (to promote it) and the other sentinels (to vote).
    await pollUntil(
      'sentinels know the replica and each other',
      async () => {
        for (const sentinel of sentinelNodes) {
          const replicas = await redisCli(sentinel.port, 'sentinel', 'replicas', masterName);
          if (!replicas.includes(String(replicaPort))) return false;
          const master = await redisCli(sentinel.port, 'sentinel', 'master', masterName);
          const lines = master.split('\n');
          const others = Number(lines[lines.indexOf('num-other-sentinels') + 1]);
          if (others !== sentinelCount - 1) return false;
        }
        return true;
      },
      { timeoutMs: 30_000 },
    );
  } catch (error) {
    const output = [...data, ...sentinelNodes].map((node) => node.process.recentOutput).join('\n');
    await stop();
    throw new Error(`${(error as Error).message}\n${output.slice(-2_000)}`);
  }

  const nodeAt = (port: number) => {
    const node = data.find((candidate) => candidate.port === port);
    if (node === undefined) throw new Error(`no private sentinel data node on ${port}`);
    return node;
  };
  /** Waits until the sentinels see `port` as a replica of `master` again (no longer failing). */
  const settled = async (master: number, replica: number) => {
    await linkUp(replica);
    await pollUntil(
      `sentinels see ${replica} as a replica of ${master}`,
      async () => {
        for (const sentinel of sentinelNodes) {
          const replicas = await redisCli(sentinel.port, 'sentinel', 'replicas', masterName);
          const entries = replicas.split('\n');
          const at = entries.indexOf(`127.0.0.1:${replica}`);
          if (at < 0) return false;
          const flags = entries[entries.indexOf('flags', at) + 1] ?? '';
          if (flags !== 'slave') return false;
          // The failover's own state must be over, or a new SENTINEL FAILOVER is refused (INPROG).
          const state = await redisCli(sentinel.port, 'sentinel', 'master', masterName);
          const lines = state.split('\n');
          if (!(lines[lines.indexOf('flags') + 1] === 'master')) return false;
        }
        return true;
      },
      { timeoutMs: 30_000 },
    );
  };

  return {
    sentinels: sentinelNodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    name: masterName,
    masterPort: askMaster,
    failover: async () => {
      const old = await askMaster();
      // A refusal comes back as text (redis-cli exits 0): NOGOODSLAVE while the sentinel has not
      // yet seen the replica's link up, INPROG while an earlier failover's state lasts. CI once
      // waited 30 s for a promotion that a refused FAILOVER never started: asked again until OK.
      let refusal = '';
      await pollUntil(
        'SENTINEL FAILOVER accepted',
        async () => {
          refusal = await redisCli(sentinelNodes[0]!.port, 'sentinel', 'failover', masterName);
          return refusal === 'OK';
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; last reply: ${refusal}`);
      });
      const master = await promoted(old, 30_000);
      // The sentinels turn the old master into the new one's replica only at their next INFO of
      // it (every 10 s); doing what they would do at once spares each failover those seconds.
      await redisCli(old, 'replicaof', '127.0.0.1', String(master));
      await settled(master, old);
      return master;
    },
    killMaster: async () => {
      const old = await askMaster();
      const node = nodeAt(old);
      node.process.signal('SIGKILL');
      const killedAt = Date.now();
      await node.process.waitExit();
      const master = await promoted(old, 30_000);
      const promotedAfterMs = Date.now() - killedAt;
      // Back as the new master's replica, empty (no persistence): it syncs from the new master.
      // With replica-priority 0 until it has: CI once saw the sentinels fail over a second time,
      // right after this restart (most likely a false "down" of the new master on a loaded
      // machine), and promote this empty node, losing every key. Unpromotable, such a failover
      // finds no replica and aborts; the new master stays.
      const restarted = await startData(old, master, ['--replica-priority', '0']);
      data[data.indexOf(node)] = restarted;
      await settled(master, old);
      await redisCli(old, 'config', 'set', 'replica-priority', '100');
      const now = await askMaster();
      if (now !== master || !(await isMaster(master))) {
        throw new Error(
          `the sentinels failed over again after the kill: ${master} was promoted, now ${now} is named`,
        );
      }
      return { port: master, promotedAfterMs };
    },
    client: (options = {}) => {
      const client = new RedisClient({
        sentinels: sentinelNodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
        name: masterName,
        ...options,
      });
      client.on('error', () => {});
      return client;
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * {@link startPrivateSentinel} for a test file that needs one: `{ sentinel }` when it started,
 * else `{ skip }`, the reason (also printed: `skipped: no Redis Sentinel could be started …`) for
 * `describe.skipIf`.
 */
export async function startPrivateSentinelOrSkip(
  options: { sentinelCount?: 1 | 3 } = {},
): Promise<{ sentinel: PrivateSentinel; skip?: undefined } | { sentinel?: undefined; skip: string }> {
  try {
    return { sentinel: await startPrivateSentinel(options) };
  } catch (error) {
    const skip = `skipped: no Redis Sentinel could be started (${(error as Error).message})`;
    console.log(skip);
    return { skip };
  }
}
