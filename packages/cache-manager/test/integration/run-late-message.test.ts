import { generousDeadlineMs, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { heard } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

/**
 * A factory run (`getOrSet`'s, and `getOrSetMany`'s) that replaces a value in grace on an
 * instance that hears the bus message of that value's write only while it runs (a late message:
 * under load, or across a Cluster's bus). The message announces the write the run read before it
 * started, not a change made since: the run's value is still the key's new value, in this
 * instance's L1, in L2 and for every other instance. Superseded by it, the run served its value
 * but cached nothing: L2 kept the value it replaced. The reading instance reaches Redis (each
 * master of the Cluster) through reply-holding proxies, which hold its bus messages; its clock
 * runs two minutes ahead, so the values written with a one-minute ttl are in grace for it.
 */
interface Backend {
  /** A cache on the backend itself. */
  open: (options?: CacheOptions) => Promise<Cache>;
  /** A cache that reaches the backend through the proxies, and a hold of its bus messages. */
  openHeld: (options?: CacheOptions) => Promise<{ cache: Cache; hold: () => void; release: () => void }>;
}

/** Two minutes ahead: a value written with a one-minute ttl is in grace for the reader. */
const ahead = { now: () => Date.now() + 120_000 };
const written = { ttlMs: 60_000, graceMs: 600_000 };

const runs: [string, (cache: Cache, key: string, factory: () => Promise<string>) => Promise<unknown>][] = [
  ['getOrSet', (cache, key, factory) => cache.getOrSet(key, factory, written)],
  [
    'getOrSetMany',
    async (cache, key, factory) =>
      (await cache.getOrSetMany([key], async (keys) => Promise.all(keys.map(factory)), written))[0],
  ],
];

function describeLateMessage(name: string, skip: boolean, backend: () => Backend): void {
  describe.skipIf(skip)(`a run that hears of the value it replaces late (${name})`, () => {
    it.each(runs)('the %s run’s value is cached', async (method, run) => {
      const key = `late-${method}`;
      const { open, openHeld } = backend();
      const writer = await open();
      const { cache: reader, hold, release } = await openHeld({ clock: ahead });
      hold();
      await writer.set(key, 'old', written);
      let calls = 0;
      const value = await run(reader, key, async () => {
        calls += 1;
        // The message of the write of 'old' arrives while the run lasts.
        const message = heard(reader, key);
        release();
        await message;
        return 'new';
      });
      expect(value).toBe('new');
      expect(calls).toBe(1);
      expect(reader.getLocal(key)).toBe('new');
      expect(await (await open()).get(key)).toBe('new');
    });
  });
}

const base = { ttlMs: 60_000, operationTimeoutMs: generousDeadlineMs };

const started = await startPrivateRedisOrSkip();
{
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  const proxies: ReplyHoldingProxy[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await started.redis?.stop();
  });
  const openAt = async (url: string, options: CacheOptions) => {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({ redis: client, prefix: 'late-run:', ...base, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  describeLateMessage('Redis', started.skip !== undefined, () => ({
    open: (options = {}) => openAt(started.redis!.url, options),
    openHeld: async (options = {}) => {
      const proxy = await ReplyHoldingProxy.start(started.redis!.port);
      proxies.push(proxy);
      const cache = await openAt(proxy.url, options);
      return { cache, hold: () => proxy.holdSubscribers(), release: () => proxy.release() };
    },
  }));
}

const cluster = usePrivateCluster('a late bus message on a Cluster');
{
  const prefix = `${uniqueName('late-run-cluster')}:`;
  const clients: Cluster[] = [];
  const caches: Cache[] = [];
  const proxies: ReplyHoldingProxy[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await Promise.all(proxies.map((proxy) => proxy.close()));
  });
  const openWith = async (redis: Cluster, options: CacheOptions) => {
    const cache = new Cache({ redis, prefix, ...base, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  describeLateMessage('Redis Cluster, 3 masters', !cluster.installed, () => ({
    open: (options = {}) => openWith(cluster.client(), options),
    openHeld: async (options = {}) => {
      // Every master through a proxy of its own: the bus subscribes through any one of them.
      const held = await Promise.all(
        cluster.nodes().map(async (node) => ({ node, proxy: await ReplyHoldingProxy.start(node.port) })),
      );
      proxies.push(...held.map(({ proxy }) => proxy));
      const natMap = Object.fromEntries(
        held.map(({ node, proxy }) => [`${node.host}:${node.port}`, { host: '127.0.0.1', port: proxy.port }]),
      );
      const client = new Cluster(
        held.map(({ proxy }) => ({ host: '127.0.0.1', port: proxy.port })),
        { natMap },
      );
      client.on('error', () => {});
      clients.push(client);
      await new Promise<void>((resolve) => client.once('ready', () => resolve()));
      const cache = await openWith(client, options);
      return {
        cache,
        hold: () => {
          for (const { proxy } of held) proxy.holdSubscribers();
        },
        release: () => {
          for (const { proxy } of held) proxy.release();
        },
      };
    },
  }));
}
