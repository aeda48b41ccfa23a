import { execFile } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { promisify } from 'node:util';
import { delay, withDeadline } from '@noa/core';
import { generousDeadlineMs, type PrivateRedisCluster, startRedisCluster } from '@noa/testkit';
import { Cluster, type ClusterOptions, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('a private Redis Cluster');
const run = promisify(execFile);

/**
 * A private 3-master Cluster for one `describe` block, started before its tests; the clients
 * and caches its tests register are closed after them. `clusterOptions` apply to `connect()`.
 */
function privateCluster(clusterOptions: ClusterOptions = {}) {
  let cluster: PrivateRedisCluster | undefined;
  const clients: (Cluster | Redis)[] = [];
  const caches: Cache[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });
  return {
    clients,
    caches,
    get nodes() {
      return cluster!.nodes;
    },
    async connect(): Promise<Cluster> {
      const client = new Cluster(cluster!.nodes, clusterOptions);
      clients.push(client);
      await new Promise<void>((resolve) => client.once('ready', () => resolve()));
      return client;
    },
  };
}

/**
 * On a Cluster, ioredis keeps the pub/sub subscription on one node and, when that connection
 * ends, moves it to another without any event on the Cluster client. Messages published in
 * between are lost, so the bus must notice the move itself and resync, as it does on a
 * single node's reconnect.
 */
describe.skipIf(!hasRedisServer)('invalidation bus on a Redis Cluster', () => {
  const cluster = privateCluster();
  const { clients, caches, connect } = cluster;

  it('an instance whose subscription connection dropped does not keep serving what it missed', async () => {
    const reader = new Cache({
      redis: await connect(),
      prefix: 'moved:',
      operationTimeoutMs: generousDeadlineMs,
    });
    const writer = new Cache({
      redis: await connect(),
      prefix: 'moved:',
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(reader, writer);
    await Promise.all([reader.ready(), writer.ready()]);
    const admins = cluster.nodes.map(({ host, port }) => new Redis(port, host));
    clients.push(...admins);
    // Each round drops every subscription and writes at once, while the subscriptions move.
    for (let round = 0; round < 5; round += 1) {
      await writer.set('k', `before ${round}`);
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline && (await reader.get('k')) !== `before ${round}`) await delay(50);
      expect(await reader.get('k')).toBe(`before ${round}`);
      await Promise.all(admins.map((admin) => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')));
      await writer.set('k', `after ${round}`);
      while (Date.now() < deadline && (await reader.get('k')) !== `after ${round}`) await delay(50);
      expect(await reader.get('k')).toBe(`after ${round}`);
    }
    // The bus still carries messages once moved: a later write evicts the reader's copy.
    const applied = new Promise<void>((resolve) => {
      const stop = reader.onInvalidation((message) => {
        if (message.k.includes('k')) {
          stop();
          resolve();
        }
      });
    });
    await writer.set('k', 'last');
    await applied;
    expect(await reader.get('k')).toBe('last');
  });
});

/**
 * A node removed from the Cluster (its slots moved away, then `redis-cli --cluster del-node`,
 * which forgets it on the others and resets it) keeps running, so a subscription through it
 * never ends, but it no longer gets the Cluster's PUBLISH messages.
 */
describe.skipIf(!hasRedisServer)('invalidation bus whose node leaves the Cluster', () => {
  // Without periodic refreshes ioredis learns of a removed node only from a redirected command.
  const cluster = privateCluster({ slotsRefreshInterval: 1_000 });
  const { clients, caches, connect } = cluster;

  it("a set on another instance still evicts this instance's L1 copy", async () => {
    const reader = new Cache({
      redis: await connect(),
      prefix: 'left:',
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(reader);
    await reader.ready();
    const admins = cluster.nodes.map(({ host, port }) => new Redis(port, host));
    clients.push(...admins);
    // Only the reader is subscribed yet: the node with a subscriber is the one it listens on.
    const counts = await Promise.all(
      admins.map(async (admin) => (await admin.pubsub('NUMSUB', 'left:__bus'))[1] as number),
    );
    const leaving = counts.indexOf(1);
    expect(leaving).toBeGreaterThanOrEqual(0);
    const staying = (leaving + 1) % admins.length;
    const writer = new Cache({
      redis: await connect(),
      prefix: 'left:',
      operationTimeoutMs: generousDeadlineMs,
    });
    caches.push(writer);
    await writer.ready();

    await writer.set('k', 'before');
    const settled = Date.now() + 5_000;
    while (Date.now() < settled && (await reader.get('k')) !== 'before') await delay(50);
    expect(await reader.get('k')).toBe('before');

    const leavingId = String(await admins[leaving]?.cluster('MYID'));
    const entry = `127.0.0.1:${cluster.nodes[staying]?.port}`;
    await moveAllSlots(admins, leaving, staying);
    await run('redis-cli', ['--cluster', 'del-node', entry, leavingId]);
    // The node is still up (del-node resets it, no shutdown), so no subscription to it ended.
    expect(await admins[leaving]?.ping()).toBe('PONG');

    // Wait (bounded, no assertion) for both buses to move off the removed node; without the
    // move the eviction below is what fails.
    const subscribers = async (indexes: number[]) => {
      const counts = await Promise.all(
        indexes.map(async (index) => (await admins[index]?.pubsub('NUMSUB', 'left:__bus'))?.[1] as number),
      );
      return counts.reduce((sum, count) => sum + count, 0);
    };
    const remaining = admins.map((_, index) => index).filter((index) => index !== leaving);
    const deadline = Date.now() + 20_000;
    while (
      Date.now() < deadline &&
      ((await subscribers([leaving])) > 0 || (await subscribers(remaining)) < 2)
    ) {
      await delay(100);
    }
    // The move dropped the reader's L1; read the key into it again, then a set must evict it.
    expect(await reader.get('k')).toBe('before');
    const applied = new Promise<void>((resolve) => {
      const stop = reader.onInvalidation((message) => {
        if (message.k.includes('k')) {
          stop();
          resolve();
        }
      });
    });
    await writer.set('k', 'after');
    await withDeadline(applied, 10_000, "eviction of the reader's copy");
    expect(await reader.get('k')).toBe('after');
  });
});

/** The hash slots `node` serves, from its own line of CLUSTER NODES. */
async function ownSlots(node: Redis): Promise<number[]> {
  const lines = String(await node.cluster('NODES')).split('\n');
  const own = lines.find((line) => line.includes('myself')) ?? '';
  const slots: number[] = [];
  for (const range of own.split(' ').slice(8)) {
    const [from, to = from] = range.split('-').map(Number);
    if (from === undefined || to === undefined || Number.isNaN(from)) continue;
    for (let slot = from; slot <= to; slot += 1) slots.push(slot);
  }
  return slots;
}

/**
 * Sends one command per slot to `node` in one pipeline; throws the first error, but for a
 * node that turned replica meanwhile (`SETSLOT only with masters`) when `unlessReplica`.
 */
async function perSlot(
  node: Redis,
  slots: number[],
  command: (slot: number) => string[],
  unlessReplica = false,
): Promise<unknown[]> {
  const replies = (await node.pipeline(slots.map((slot) => ['cluster', ...command(slot)])).exec()) ?? [];
  for (const [error] of replies) {
    if (error && !(unlessReplica && error.message.includes('only with masters'))) throw error;
  }
  return replies.map(([, reply]) => reply);
}

/**
 * Moves every slot of the node `admins[from]` to `admins[to]` with the steps of `redis-cli
 * --cluster reshard` (importing, migrating, the slot's keys, then the new owner on the target,
 * the source and the others), each step for all slots in one pipeline: reshard's round trips
 * slot by slot (5,461 slots) took 3-9 s.
 */
async function moveAllSlots(admins: Redis[], from: number, to: number): Promise<void> {
  const source = admins[from]!;
  const target = admins[to]!;
  const sourceId = String(await source.cluster('MYID'));
  const targetId = String(await target.cluster('MYID'));
  const slots = await ownSlots(source);
  await perSlot(target, slots, (slot) => ['setslot', String(slot), 'importing', sourceId]);
  await perSlot(source, slots, (slot) => ['setslot', String(slot), 'migrating', targetId]);
  const keys = (await perSlot(source, slots, (slot) => [
    'getkeysinslot',
    String(slot),
    '1000',
  ])) as string[][];
  for (const inSlot of keys.filter((found) => found.length > 0)) {
    await source.migrate('127.0.0.1', target.options.port!, '', 0, 5_000, 'KEYS', ...inSlot);
  }
  await perSlot(target, slots, (slot) => ['setslot', String(slot), 'node', targetId]);
  // The source, left without slots, becomes a replica of the target as soon as it hears of
  // the target's new epoch (as after a reshard); the others are told as redis-cli tells them.
  const others = admins.filter((_, index) => index !== from && index !== to);
  for (const node of [source, ...others])
    await perSlot(node, slots, (slot) => ['setslot', String(slot), 'node', targetId], true);
}

describe('invalidation bus on a Cluster that never becomes ready', () => {
  it('cache.ready() settles once the cache is closed', async () => {
    // A port nothing listens on: the Cluster keeps trying and never emits 'ready'.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const client = new Cluster([{ host: '127.0.0.1', port }], { clusterRetryStrategy: () => 200 });
    client.on('error', () => {});
    const cache = new Cache({ redis: client, prefix: 'never-ready:' });
    try {
      await cache.close();
      // A generous bound, not a timing assertion: without it the test would just hang.
      await expect(withDeadline(cache.ready(), 5_000, 'cache ready')).resolves.toBeUndefined();
    } finally {
      client.disconnect();
    }
  });
});
