import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sparePort, waitForPort } from './ports.js';
import { removeAtExit, ServerProcess } from './server-process.js';

const run = promisify(execFile);

/** A real Redis Cluster of `masters` nodes on spare ports, started for one test file. */
export interface PrivateRedisCluster {
  readonly nodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Starts `masters` cluster-enabled redis-servers and joins them with `redis-cli --cluster create`. */
export async function startRedisCluster(masters = 3): Promise<PrivateRedisCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-redis-cluster-'));
  removeAtExit(dir);
  const children: ServerProcess[] = [];
  const ports: number[] = [];
  for (let index = 0; index < masters; index += 1) {
    // Cluster bus uses port + 10000, so keep the data port below 55536.
    let port = await sparePort();
    while (port > 55_000) port = await sparePort();
    ports.push(port);
    const nodeDir = path.join(dir, String(port));
    await run('mkdir', ['-p', nodeDir]);
    const node = new ServerProcess({
      command: 'redis-server',
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        nodeDir,
        '--save',
        '',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
      ],
    });
    node.start();
    children.push(node);
  }
  await Promise.all(ports.map((port) => waitForPort(port)));
  await run('redis-cli', [
    '--cluster',
    'create',
    ...ports.map((port) => `127.0.0.1:${port}`),
    '--cluster-replicas',
    '0',
    '--cluster-yes',
  ]);
  // Wait until every node agrees that all slots are served.
  const deadline = Date.now() + 20_000;
  for (const port of ports) {
    while (true) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
      if (stdout.includes('cluster_state:ok')) break;
      if (Date.now() > deadline) throw new Error(`redis cluster node ${port} never reached cluster_state:ok`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    stop: async () => {
      await Promise.all(
        children.map(async (child) => {
          child.signal('SIGKILL');
          await child.waitExit();
        }),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * {@link startRedisCluster} for a test file that needs one: `{ cluster }` when it formed, else
 * `{ skip }`, the reason (also printed: `skipped: no Redis Cluster could be started …`) for
 * `describe.skipIf`.
 */
export async function startRedisClusterOrSkip(
  masters = 3,
): Promise<{ cluster: PrivateRedisCluster; skip?: undefined } | { cluster?: undefined; skip: string }> {
  try {
    return { cluster: await startRedisCluster(masters) };
  } catch (error) {
    const skip = `skipped: no Redis Cluster could be started (${(error as Error).message})`;
    console.log(skip);
    return { skip };
  }
}
