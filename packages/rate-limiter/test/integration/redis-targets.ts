import { serviceUrl, startRedisCluster } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { recommendedRedisOptions } from '../../src/redis.js';

/** A Redis server (or cluster) for a suite to run against, and how to stop it. */
export interface Target {
  name: string;
  connect(): Promise<{ client: Redis | Cluster; stop(): Promise<void> }>;
}

/** The shared Redis, and a private 3-master Redis Cluster started on spare ports. */
export const targets: Target[] = [
  {
    name: 'redis',
    async connect() {
      const client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
      await client.connect();
      return { client, stop: async () => void (await client.quit()) };
    },
  },
  {
    name: 'redis cluster (3 masters)',
    async connect() {
      const cluster = await startRedisCluster(3);
      const client = new Cluster(cluster.nodes, { ...recommendedRedisOptions, enableOfflineQueue: true });
      return {
        client,
        async stop() {
          await client.quit();
          await cluster.stop();
        },
      };
    },
  },
];
