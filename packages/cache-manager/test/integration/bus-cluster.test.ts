import { type AddressInfo, createServer } from 'node:net';
import { delay, withDeadline } from '@noa/core';
import { type PrivateRedisCluster, startRedisCluster } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('a private Redis Cluster');

/**
 * On a Cluster, ioredis keeps the pub/sub subscription on one node and, when that connection
 * ends, moves it to another without any event on the Cluster client. Messages published in
 * between are lost, so the bus must notice the move itself and resync, as it does on a
 * single node's reconnect.
 */
describe.skipIf(!hasRedisServer)('invalidation bus on a Redis Cluster', () => {
  let cluster: PrivateRedisCluster;
  const clients: (Cluster | Redis)[] = [];
  const caches: Cache[] = [];

  async function connect(): Promise<Cluster> {
    const client = new Cluster(cluster.nodes);
    clients.push(client);
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    return client;
  }

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it('an instance whose subscription connection dropped does not keep serving what it missed', async () => {
    const reader = new Cache({ redis: await connect(), prefix: 'moved:' });
    const writer = new Cache({ redis: await connect(), prefix: 'moved:' });
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
      await Promise.all(admins.map((admin) => admin.client('KILL', 'TYPE', 'pubsub')));
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
