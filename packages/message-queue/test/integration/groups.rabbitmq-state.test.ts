import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
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

    it('refuses at add, naming group, a group whose broker queue name would pass 255 bytes', async () => {
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection: redis.connect(), prefix: uniqueName('groups-state') }),
      });
      const queue = new Queue<number>({ name: uniqueName('groups'), provider });
      try {
        const long = 'é'.repeat(125); // 250 bytes: with "<queue>.group." over AMQP's 255
        await expect(queue.add('x', 1, { group: long })).rejects.toMatchObject({
          code: 'NOA_CONFIG_INVALID',
          fields: ['group'],
        });
        await expect(
          queue.addFlow({ name: 'p', data: 0, children: [{ name: 'c', data: 1, options: { group: long } }] }),
        ).rejects.toMatchObject({ code: 'NOA_CONFIG_INVALID', fields: ['group'] });
        // Nothing was claimed: the same ids are free, and a group that fits is taken.
        expect(await queue.counts()).toMatchObject({ waiting: 0, waitingChildren: 0 });
        expect((await queue.add('x', 1, { group: 'é'.repeat(20) })).added).toBe(true);
      } finally {
        await queue.drain({ delayed: true });
        await provider.deleteQueue(queue.name);
        await provider.close();
      }
    });
  },
);
