import { isReachable, serviceUrl, startRedisCluster, uniqueName } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { type RateLimitStore, RedisStore, recommendedRedisOptions } from '../../src/index.js';
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
    const client = new Cluster(cluster.nodes, { ...recommendedRedisOptions, enableOfflineQueue: true });
    const store = new RedisStore({ client, prefix: `${uniqueName('rl')}:` });
    clients.set(store, client);
    return store;
  },
  async destroy(store) {
    await clients.get(store)?.quit();
    await stopCluster?.();
  },
});
