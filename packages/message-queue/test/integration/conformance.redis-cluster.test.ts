import { type PrivateRedisCluster, startRedisCluster } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RedisProvider } from '../../src/redis.js';
import { describeQueueConformance } from '../conformance/queue-conformance.js';

// The same suite on a real 3-master Redis Cluster: every key of a queue carries the {queue}
// hash tag, so each script runs on one slot.
let cluster: PrivateRedisCluster | undefined;
const connections: Cluster[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);

describeQueueConformance({
  name: 'redis cluster',
  capabilities: RedisProvider.capabilities,
  create: async () => {
    const connection = new Cluster(cluster!.nodes, { redisOptions: { maxRetriesPerRequest: null } });
    connections.push(connection);
    return new RedisProvider({ connection });
  },
});

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
  await cluster?.stop();
});
