import { listenerCounts, recordingLogger } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../src/policy.js';
import { RedisStore, recommendedRedisOptions } from '../src/redis.js';

const limits: LimitPolicy[] = [{ name: 'default', algorithm: 'fixed-window', limit: 1, windowMs: 1_000 }];

/**
 * Many limiters on one ioredis client, each with its own RedisStore (one per tenant, per route):
 * what a store adds to the client must not grow with the number of stores. Each store on a
 * Sentinel client watched it with four listeners of its own (and one more for its first `ready`),
 * so the eleventh store set off Node's MaxListenersExceededWarning, and a limiter's `close()`
 * (which leaves a store it did not create open) left them all on the client for its whole life.
 */

const clients: Redis[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.disconnect();
});

function sentinelClient(): Redis {
  // Lazy, and never connected: the stores are made before the first connection, as at startup.
  const client = new Redis({
    sentinels: [{ host: '127.0.0.1', port: 1 }],
    name: 'mymaster',
    ...recommendedRedisOptions,
    lazyConnect: true,
  });
  client.on('error', () => {});
  clients.push(client);
  return client;
}

describe('RedisStores sharing one client', () => {
  it('a Sentinel client: 20 stores add what one store adds; closing them all removes it', async () => {
    const client = sentinelClient();
    const before = listenerCounts(client);
    const warnings: string[] = [];
    const onWarning = (warning: Error) => {
      if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    try {
      // With a logger, as a store that warns of an evicting Redis once connected.
      const first = new RedisStore({ client, prefix: 't0:', logger: recordingLogger() });
      // The first check starts the wait for the first connection (it gives up at its deadline).
      await first.consume('t0:k', limits, [1], undefined, { deadlineMs: 1 }).catch(() => {});
      const one = listenerCounts(client);
      const stores = [first];
      for (let index = 1; index < 20; index += 1) {
        const store = new RedisStore({ client, prefix: `t${index}:`, logger: recordingLogger() });
        await store.consume(`t${index}:k`, limits, [1], undefined, { deadlineMs: 1 }).catch(() => {});
        stores.push(store);
      }
      expect(listenerCounts(client)).toEqual(one);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
      for (const store of stores) await store.close();
      // The first connection's wait stays until the client connects (one listener for all).
      const { ready: _ready, ...left } = listenerCounts(client);
      const { ready: _before, ...leftBefore } = before;
      expect(left).toEqual(leftBefore);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('one shared watch still tells every open store of a revival, once each, and a closed store nothing', () => {
    const client = sentinelClient();
    const loggers = [recordingLogger(), recordingLogger(), recordingLogger()];
    const stores = loggers.map((logger, index) => new RedisStore({ client, prefix: `r${index}:`, logger }));
    void stores[2]!.close();
    // As ioredis ends a Sentinel client in a failover: connecting, "Connection is closed.", end.
    client.emit('connecting');
    client.emit('error', new Error('Connection is closed.'));
    client.emit('end');
    const revivals = loggers.map(
      (logger) => logger.messages('warn').filter((message) => message.includes('reconnecting it')).length,
    );
    expect(revivals).toEqual([1, 1, 0]);
  });
});
