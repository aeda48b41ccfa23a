import { isReachable, serviceUrl, startRedisCluster, uniqueName } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { RateLimitStore } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions, recommendedRedisOptions } from '../../src/redis.js';
import { storeConformanceSuite } from '../conformance/store-suite.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);
const clients = new Map<RateLimitStore, { quit(): Promise<unknown> }>();

storeConformanceSuite('redis', {
  skip,
  async create() {
    const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    // A fresh script cache is not needed: EVALSHA falls back to EVAL on NOSCRIPT.
    const store = new RedisStore({ client, prefix: `${uniqueName('rl')}:` });
    clients.set(store, client);
    return store;
  },
  async destroy(store) {
    await clients.get(store)?.quit();
  },
});

let stopCluster: (() => Promise<void>) | undefined;
storeConformanceSuite('redis cluster (3 masters)', {
  skip: skip ?? undefined,
  async create() {
    const cluster = await startRedisCluster(3);
    stopCluster = cluster.stop;
    const client = new Cluster(cluster.nodes, recommendedClusterOptions);
    const store = new RedisStore({ client, prefix: `${uniqueName('rl')}:` });
    clients.set(store, client);
    return store;
  },
  async destroy(store) {
    await clients.get(store)?.quit();
    await stopCluster?.();
  },
});

describe.skipIf(skip !== undefined)('RedisStore keys expire', () => {
  it('every state hash has a TTL no longer than its longest-lived state', async () => {
    const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    const prefix = `${uniqueName('rlttl')}:`;
    const store = new RedisStore({ client, prefix });
    const fixed = { name: 'f', algorithm: 'fixed-window' as const, limit: 5, windowMs: 10_000 };
    const bucket = { name: 'b', algorithm: 'token-bucket' as const, limit: 10, windowMs: 1_000, burst: 10 };
    for (let index = 0; index < 3; index += 1) {
      await store.consume('w', [fixed], [1], undefined);
      await store.consume('b', [bucket], [2], undefined);
    }
    const windowTtl = await client.pttl(`${prefix}{w}`);
    expect(windowTtl).toBeGreaterThan(0);
    expect(windowTtl).toBeLessThanOrEqual(10_000);
    // 6 tokens spent at 10 per second: full again within 600 ms.
    const bucketTtl = await client.pttl(`${prefix}{b}`);
    expect(bucketTtl).toBeGreaterThan(0);
    expect(bucketTtl).toBeLessThanOrEqual(600);
    client.disconnect();
  });
});
