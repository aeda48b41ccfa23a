import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, RabbitMqProvider, RedisJobStateStore, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';
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
        await queue.pause();
        for (const tenant of ['gold', 'silver', 'bronze']) {
          await queue.addBulk(
            Array.from({ length: 2_000 }, () => ({
              name: 'work',
              data: { tenant },
              options: { group: tenant },
            })),
          );
        }
        const order: string[] = [];
        const worker = new Worker({
          queue,
          concurrency: 20,
          groups: { weights: { gold: 3, silver: 2, bronze: 1 } },
          handler: (job) => {
            order.push(job.data.tenant);
          },
        });
        await queue.resume();
        // Every group stays backlogged for the first 3,600 (bronze gets 600 of its 2,000).
        await waitFor(() => order.length >= 3_600, 60_000, '3,600 jobs');
        await worker.close();
        const window = order.slice(0, 3_600);
        const share = (tenant: string) => window.filter((value) => value === tenant).length / window.length;
        console.log(
          `groups (rabbitmq + state): gold ${share('gold').toFixed(3)} silver ${share('silver').toFixed(3)} bronze ${share('bronze').toFixed(3)}`,
        );
        expect(Math.abs(share('gold') / (3 / 6) - 1)).toBeLessThanOrEqual(0.1);
        expect(Math.abs(share('silver') / (2 / 6) - 1)).toBeLessThanOrEqual(0.1);
        expect(Math.abs(share('bronze') / (1 / 6) - 1)).toBeLessThanOrEqual(0.1);
      } finally {
        await queue.drain({ delayed: true });
        await provider.deleteQueue(queue.name);
        await provider.close();
      }
    });
  },
);
