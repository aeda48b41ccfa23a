import {
  isReachable,
  type PrivateRedisCluster,
  serviceUrl,
  startRedisCluster,
  uniqueName,
} from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { describeQueueConformance } from '../conformance/queue-conformance.js';

// RabbitMQ with its job state on a real 3-master Redis Cluster: every state key of a queue
// carries the {queue} hash tag, so each script runs on one slot.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
let cluster: PrivateRedisCluster | undefined;
const connections: Cluster[] = [];

beforeAll(async () => {
  if (reachable) cluster = await startRedisCluster(3);
}, 60_000);

describeQueueConformance({
  name: 'rabbitmq + redis cluster state',
  skipReason: reachable ? undefined : `no RabbitMQ at ${url}`,
  capabilities: RabbitMqProvider.stateCapabilities,
  create: async () => {
    const connection = new Cluster(cluster!.nodes, { redisOptions: { maxRetriesPerRequest: null } });
    connections.push(connection);
    const state = new RedisJobStateStore({ connection, prefix: uniqueName('mq-state') });
    return new RabbitMqProvider({ url, state });
  },
  cleanupQueue: (provider, queue) => (provider as RabbitMqProvider).deleteQueue(queue),
});

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
  await cluster?.stop();
});
