import { execFileSync } from 'node:child_process';
import { type PrivateRedisCluster, startRedisCluster } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

/**
 * Whether a `redis-server` binary is on PATH (private servers and clusters need one); prints
 * `skipped: no redis-server binary for <purpose>` when it is not.
 */
export function redisServerInstalled(purpose: string): boolean {
  try {
    execFileSync('redis-server', ['--version']);
    return true;
  } catch {
    console.log(`skipped: no redis-server binary for ${purpose}`);
    return false;
  }
}

/**
 * A Cluster client on `nodes` for tests that stall masters: it retries a redirected command at
 * once (`retryDelayOnFailover: 0`), swallows its errors, joins `clients` (the caller disconnects
 * them) and resolves once ready.
 */
export async function stallTolerantCluster(
  nodes: PrivateRedisCluster['nodes'],
  clients: { push(client: Cluster): unknown },
): Promise<Cluster> {
  const client = new Cluster(nodes, { retryDelayOnFailover: 0 });
  client.on('error', () => {});
  clients.push(client);
  await new Promise<void>((resolve) => client.once('ready', () => resolve()));
  return client;
}

/**
 * A private 3-master Redis Cluster started before the file's tests, with one connected client
 * (`client()`), both stopped after them. `installed` is false (and nothing starts) without a
 * `redis-server` binary.
 */
export function usePrivateCluster(purpose: string): {
  installed: boolean;
  client: () => Cluster;
  /** The cluster's nodes, for more clients (e.g. with other options). */
  nodes: () => PrivateRedisCluster['nodes'];
} {
  const installed = redisServerInstalled(purpose);
  let cluster: PrivateRedisCluster | undefined;
  let client: Cluster | undefined;
  beforeAll(async () => {
    if (!installed) return;
    cluster = await startRedisCluster(3);
    client = new Cluster(cluster.nodes);
    await new Promise<void>((resolve) => client!.once('ready', () => resolve()));
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });
  return { installed, client: () => client!, nodes: () => cluster!.nodes };
}
