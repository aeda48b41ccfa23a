import { isReachable, serviceUrl } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { RedisProvider } from '../../src/redis.js';
import { describeQueueConformance } from '../conformance/queue-conformance.js';

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);
const connections: Redis[] = [];

describeQueueConformance({
  name: 'redis',
  capabilities: RedisProvider.capabilities,
  skipReason: reachable ? undefined : `no Redis at ${url}`,
  create: async () => {
    const connection = new Redis(url, { maxRetriesPerRequest: null });
    connections.push(connection);
    return new RedisProvider({ connection });
  },
});

afterAll(async () => {
  await Promise.all(connections.map((connection) => connection.quit()));
});
