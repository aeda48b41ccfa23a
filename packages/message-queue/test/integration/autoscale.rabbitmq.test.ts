import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
const redisUp = await isReachable('redis');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
if (!redisUp) console.log(`skipped (state store variant): no Redis at ${serviceUrl('redis')}`);

describe.skipIf(!reachable)('autoscale on RabbitMQ', () => {
  for (const withState of [false, true]) {
    it.skipIf(withState && !redisUp)(
      `runs as many jobs at once as the scaled-up concurrency (${withState ? 'with a state store' : 'AMQP only'})`,
      async () => {
        const redis = withState ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null }) : undefined;
        const provider = new RabbitMqProvider({
          url,
          ...(redis
            ? { state: new RedisJobStateStore({ connection: redis, prefix: uniqueName('autoscale') }) }
            : {}),
        });
        const queue = new Queue({ name: uniqueName('autoscale'), provider });
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let running = 0;
        let most = 0;
        const worker = new Worker({
          queue,
          autoscale: { min: 1, max: 6, jobsPerSlot: 1, intervalMs: 50 },
          handler: async () => {
            running += 1;
            most = Math.max(most, running);
            await gate;
            running -= 1;
          },
        });
        try {
          await queue.addBulk(Array.from({ length: 30 }, (_, n) => ({ name: 'slow', data: n })));
          await waitFor(() => worker.concurrency === 6, 10_000, 'the scale-up to 6');
          // Scaled up: the broker must deliver enough for six handlers at once.
          await waitFor(() => running === 6, 10_000, `six handlers at once (most: ${most})`);
        } finally {
          release();
          await worker.close();
          await provider.deleteQueue(queue.name);
          await provider.close();
          redis?.disconnect();
        }
      },
    );
  }
});
