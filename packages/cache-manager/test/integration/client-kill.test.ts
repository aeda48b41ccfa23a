import { delay } from '@noa/core';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * A connection dropped and re-established by ioredis at once (`CLIENT KILL`, a server's idle
 * `timeout`, a load balancer's reset): the client is `reconnecting` for a moment, then `ready`.
 * Calls made in that moment are held, unsent, until it is ready again within their deadline,
 * rather than failed at once: failed, they opened the breaker and turned a waiter into a
 * second factory run. (Held for good, past their deadline, they would land late: see
 * cut-connection.test.ts.)
 */
describe.skipIf(!redisUp)('a connection killed and re-established within the deadline', () => {
  const prefix = testPrefix('cm_kill');
  const admin = redisUp ? new Redis(redisUrl) : undefined;
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await dropPrefix(prefix);
    admin?.disconnect();
  });

  /** A client that reconnects 300 ms after losing its connection: long enough to be seen down. */
  const slowToReconnect = () => {
    const client = new Redis(redisUrl, { retryStrategy: () => 300 });
    client.on('error', () => {});
    clients.push(client);
    return client;
  };
  const open = async (redis: Redis, options: CacheOptions = {}) => {
    const cache = new Cache({ prefix, redis, operationTimeoutMs: 3_000, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  /** Kills `client`'s connection from the server side and waits until ioredis has seen it. */
  const kill = async (client: Redis) => {
    const id = await client.client('ID');
    await admin!.client('KILL', 'ID', String(id));
    const status = (): string => client.status;
    while (status() === 'ready') await delay(5);
  };

  it('a write made while ioredis reconnects waits for it and lands, the breaker stays closed', async () => {
    const client = slowToReconnect();
    const cache = await open(client, { onBackendError: 'throw', bus: false });
    await cache.get('a-call-while-ready');
    await kill(client);
    await cache.set('written-while-reconnecting', 'v');
    expect(await admin!.exists(`${prefix}v:written-while-reconnecting`)).toBe(1);
    expect(cache.stats().l2).toBe('closed');
  });

  it('a getOrSet waiting on another instance’s lease keeps waiting through the reconnect: one factory run', async () => {
    const holder = await open(slowToReconnect(), { lock: { pollMs: 20 } });
    const waiterClient = slowToReconnect();
    const waiter = await open(waiterClient, { lock: { pollMs: 20 } });
    let runs = 0;
    const factory = async () => {
      const run = ++runs;
      await delay(1_000);
      return `computed by run ${run}`;
    };
    const held = holder.getOrSet('leased', factory);
    await delay(100);
    const waited = waiter.getOrSet('leased', factory);
    await delay(100);
    await kill(waiterClient);
    expect(await Promise.all([held, waited])).toEqual(['computed by run 1', 'computed by run 1']);
    expect(runs).toBe(1);
  });
});
