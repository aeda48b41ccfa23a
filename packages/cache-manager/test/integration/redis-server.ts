import { execFileSync } from 'node:child_process';
import { delay } from '@noa/core';
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

/**
 * Each slot's master (host:port) as the Cluster itself says (CLUSTER SLOTS), once every slot is
 * served and the three masters hold about a third each, as the test's Cluster is made. Read
 * from the client's own map instead, the search for keys on one master once found none in
 * 100,000 tries, in CI (about 1 in 9 keys qualifies; what the map held was not recorded): asked
 * again until the reply is the settled one, or the test says what the Cluster answered.
 */
export async function settledSlotMasters(client: Cluster): Promise<string[]> {
  let last: unknown;
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const reply = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
    last = reply;
    const masters: string[] = [];
    for (const [start, end, [host, port]] of reply)
      for (let slot = start; slot <= end; slot += 1) masters[slot] = `${host || '127.0.0.1'}:${port}`;
    const owned = new Map<string, number>();
    for (const master of masters) if (master !== undefined) owned.set(master, (owned.get(master) ?? 0) + 1);
    const covered =
      masters.length === 16_384 && [...owned.values()].reduce((sum, n) => sum + n, 0) === 16_384;
    if (covered && owned.size === 3 && [...owned.values()].every((n) => n > 5_000)) return masters;
    await delay(100);
  }
  throw new Error(`no settled slot map: ${JSON.stringify(last)}`);
}
