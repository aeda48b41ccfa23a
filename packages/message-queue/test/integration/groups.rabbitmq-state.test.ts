import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, it } from 'vitest';
import { Queue } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { expectWeightedDispatch } from './groups-scenario.js';
import { redisContext } from './redis-context.js';

// The groups test on RabbitMQ with a job state store: one broker queue per group,
// picked by smooth weighted round robin in the worker's process.
const redis = await redisContext();
const url = serviceUrl('rabbitmq');
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!redis.reachable || !rabbitUp)(
  'groups: weighted fair dispatch (RabbitMQ + Redis state)',
  () => {
    afterAll(() => redis.closeAll());

    it('3 tenants weighted 3:2:1 with 2,000 jobs each are dispatched 3:2:1 (±10%) while backlogged', async () => {
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection: redis.connect(), prefix: uniqueName('groups-state') }),
      });
      const queue = new Queue<{ tenant: string }>({ name: uniqueName('groups'), provider });
      try {
        await expectWeightedDispatch(queue, 'groups (rabbitmq + state)', 60_000);
      } finally {
        await queue.drain({ delayed: true });
        await provider.deleteQueue(queue.name);
        await provider.close();
      }
    });
  },
);
