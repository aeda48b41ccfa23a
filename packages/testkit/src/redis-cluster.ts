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
  const { nodes, stop } = await startCluster(masters, 0);
  return { nodes, stop };
}

/** A private Redis Cluster whose masters have replicas, for failover tests. */
export interface ReplicatedRedisCluster extends PrivateRedisCluster {
  /** The nodes serving slots now, `host:port` (a failover changes them). */
  masters(): Promise<string[]>;
  /** The replicas of the master at `port` now, `host:port`. */
  replicasOf(port: number): Promise<string[]>;
  /** SIGKILL of the node at `port` (its replica takes over after the node timeout, 2 s). */
  kill(port: number): void;
  /** Resolves once every slot is served by a master whose replicas are all in sync again. */
  waitHealthy(timeoutMs?: number): Promise<void>;
}

/**
 * `masters` masters with `replicasPerMaster` replicas each (`redis-cli --cluster create …
 * --cluster-replicas N`), started for one test file; resolves once every replica's link to its
 * master is up. `cluster-node-timeout` is 2 s, so a killed master is failed over in a few seconds.
 */
export async function startReplicatedRedisCluster(
  masters = 3,
  replicasPerMaster = 1,
): Promise<ReplicatedRedisCluster> {
  const started = await startCluster(masters, replicasPerMaster);
  const cluster: ReplicatedRedisCluster = {
    ...started,
    // Masters serving slots, not failed: a view just after creation (or a failover) may still
    // flag as master a node that is becoming a replica, and SETSLOT on it is refused.
    masters: async () =>
      (await clusterNodes(started.live()))
        .filter((node) => node.master && node.slots && !node.failed)
        .map((node) => node.address),
    replicasOf: async (port) => {
      const nodes = await clusterNodes(started.live());
      const master = nodes.find((node) => node.address === `127.0.0.1:${port}`);
      return nodes
        .filter((node) => master !== undefined && node.masterId === master.id)
        .map((node) => node.address);
    },
    kill: (port) => started.kill(port),
    waitHealthy: async (timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        const nodes = await clusterNodes(started.live()).catch(() => []);
        const live = nodes.filter((node) => !node.failed);
        const servingMasters = live.filter((node) => node.master && node.slots);
        const synced = await Promise.all(
          live
            .filter((node) => !node.master)
            .map(async (node) => {
              const { stdout } = await run('redis-cli', [
                '-p',
                node.address.split(':')[1]!,
                'info',
                'replication',
              ]);
              return stdout.includes('master_link_status:up');
            }),
        ).catch(() => [false]);
        if (servingMasters.length === masters && synced.every(Boolean) && (await allOk(started.live())))
          return;
        if (Date.now() > deadline) throw new Error('redis cluster never became healthy again');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
  };
  await cluster.waitHealthy();
  return cluster;
}

/** One line of `CLUSTER NODES`. */
interface ClusterNode {
  id: string;
  address: string;
  master: boolean;
  masterId: string;
  failed: boolean;
  slots: boolean;
}

/** `CLUSTER NODES` as seen by the first of `ports` that answers. */
async function clusterNodes(ports: number[]): Promise<ClusterNode[]> {
  for (const port of ports) {
    try {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'nodes']);
      return stdout
        .trim()
        .split('\n')
        .map((line) => {
          const [id, address, flags, masterId, , , , , ...slots] = line.split(' ');
          return {
            id: id!,
            address: address!.split('@')[0]!,
            master: flags!.includes('master'),
            masterId: masterId!,
            failed: flags!.includes('fail'),
            slots: slots.length > 0,
          };
        });
    } catch {
      // That node is down: ask the next.
    }
  }
  throw new Error('no redis cluster node answered CLUSTER NODES');
}

/** True when every node at `ports` says `cluster_state:ok`. */
async function allOk(ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']).catch(() => ({
      stdout: '',
    }));
    if (!stdout.includes('cluster_state:ok')) return false;
  }
  return true;
}

/** The servers of a cluster: their addresses, the running ones' ports, a kill and a stop. */
interface StartedCluster {
  nodes: { host: string; port: number }[];
  live(): number[];
  kill(port: number): void;
  stop(): Promise<void>;
}

/** Starts `masters × (1 + replicas)` cluster-enabled redis-servers and joins them. */
async function startCluster(masters: number, replicas: number): Promise<StartedCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'noa-redis-cluster-'));
  removeAtExit(dir);
  const children: ServerProcess[] = [];
  const ports: number[] = [];
  for (let index = 0; index < masters * (1 + replicas); index += 1) {
    // A node also binds its cluster bus on port + 10000, which sparePort() did not check: an
    // outgoing connection may hold it, and the node then exits at once. Such a node is started
    // again on other ports (a CI run lost a whole test file to one).
    for (let attempt = 1; ; attempt += 1) {
      // Cluster bus uses port + 10000, so keep the data port below 55536.
      let port = await sparePort();
      while (port > 55_000) port = await sparePort();
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
      try {
        await waitForPort(port, attempt < 3 ? 5_000 : 15_000);
      } catch (error) {
        node.signal('SIGKILL');
        await node.waitExit();
        if (attempt >= 3) throw new Error(`${(error as Error).message}\n${node.recentOutput.slice(-1_000)}`);
        continue;
      }
      ports.push(port);
      children.push(node);
      break;
    }
  }
  await run('redis-cli', [
    '--cluster',
    'create',
    ...ports.map((port) => `127.0.0.1:${port}`),
    '--cluster-replicas',
    String(replicas),
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
    live: () => ports.filter((_, index) => children[index]!.running),
    kill: (port) => children[ports.indexOf(port)]?.signal('SIGKILL'),
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

/**
 * {@link startReplicatedRedisCluster} for a test file that needs one: `{ cluster }` when it
 * formed, else `{ skip }`, the reason (also printed: `skipped: no replicated Redis Cluster could
 * be started …`) for `describe.skipIf`.
 */
export async function startReplicatedRedisClusterOrSkip(
  masters = 3,
  replicasPerMaster = 1,
): Promise<{ cluster: ReplicatedRedisCluster; skip?: undefined } | { cluster?: undefined; skip: string }> {
  try {
    return { cluster: await startReplicatedRedisCluster(masters, replicasPerMaster) };
  } catch (error) {
    const skip = `skipped: no replicated Redis Cluster could be started (${(error as Error).message})`;
    console.log(skip);
    return { skip };
  }
}
