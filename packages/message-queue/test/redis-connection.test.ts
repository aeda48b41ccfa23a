import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisJobStateStore, RedisProvider } from '../src/redis.js';

// No server: lazyConnect clients are never connected.
describe('the connection given to RedisProvider and RedisJobStateStore', () => {
  it("refuses a client with ioredis's default maxRetriesPerRequest (20), naming the option", () => {
    const client = new Redis({ lazyConnect: true });
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    for (const make of [
      () => new RedisProvider({ connection: client }),
      () => new RedisJobStateStore({ connection: client }),
    ]) {
      expect(make).toThrow(
        expect.objectContaining({
          code: 'NOA_CONFIG_INVALID',
          fields: ['connection.options.maxRetriesPerRequest'],
        }),
      );
      expect(make).toThrow(/must be null/);
    }
    expect(() => new RedisProvider({ connection: cluster })).toThrow(
      expect.objectContaining({ fields: ['connection.options.redisOptions.maxRetriesPerRequest'] }),
    );
    expect(
      () => new RedisProvider({ connection: new Redis({ lazyConnect: true, maxRetriesPerRequest: 0 }) }),
    ).toThrow(/maxRetriesPerRequest/);
  });

  it('accepts maxRetriesPerRequest: null on a client and on a cluster (redisOptions)', async () => {
    const client = new Redis({ lazyConnect: true, maxRetriesPerRequest: null });
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], {
      lazyConnect: true,
      redisOptions: { maxRetriesPerRequest: null },
    });
    const provider = new RedisProvider({ connection: client });
    const store = new RedisJobStateStore({ connection: client });
    const onCluster = new RedisProvider({ connection: cluster });
    expect(provider.name).toBe('redis');
    expect(store).toBeDefined();
    expect(onCluster).toBeDefined();
    client.disconnect();
    cluster.disconnect();
  });
});
