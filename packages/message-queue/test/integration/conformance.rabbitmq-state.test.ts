import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { describeQueueConformance } from '../conformance/queue-conformance.js';

// The same suite on RabbitMQ with its job state kept in Redis: nothing is skipped but groups.
const url = serviceUrl('rabbitmq');
const redisUrl = serviceUrl('redis');
const reachable = (await isReachable('rabbitmq')) && (await isReachable('redis'));
if (!reachable) console.log(`skipped: no RabbitMQ at ${url} or no Redis at ${redisUrl}`);
const connections: Redis[] = [];

describeQueueConformance({
  name: 'rabbitmq + redis state',
  skipReason: reachable ? undefined : `no RabbitMQ at ${url} or no Redis at ${redisUrl}`,
  capabilities: RabbitMqProvider.stateCapabilities,
  create: async () => {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const state = new RedisJobStateStore({ connection, prefix: uniqueName('mq-state') });
    return new RabbitMqProvider({ url, state });
  },
  cleanupQueue: (provider, queue) => (provider as RabbitMqProvider).deleteQueue(queue),
});

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
});
