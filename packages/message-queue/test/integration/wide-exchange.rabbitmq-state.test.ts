import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped: no RabbitMQ at ${serviceUrl('rabbitmq')}`);

// wide-exchange.redis.test.ts through the RabbitMQ provider's state store: Lua's unpack() fails
// past ~8,000 values, and a worker at the largest concurrency the options allow (10,000) holds
// that many deliveries and settles them in one store call.
describe.skipIf(!redis.reachable || !rabbitUp)(
  'an exchange wider than Lua unpack() takes (RabbitMQ + RedisJobStateStore)',
  () => {
    afterAll(() => redis.closeAll());

    it('a worker of concurrency 10,000 runs and settles 10,000 jobs at once, results kept', async () => {
      const name = uniqueName('wide-state');
      const provider = new RabbitMqProvider({
        url: serviceUrl('rabbitmq'),
        state: new RedisJobStateStore({
          connection: redis.connect(),
          prefix: uniqueName('wide-state-store'),
        }),
      });
      const queue = new Queue<number>({ name, provider });
      const total = 10_000;
      let worker: Worker<number> | undefined;
      try {
        const added = await queue.addBulk(
          Array.from({ length: total }, (_, n) => ({ name: 'work', data: n })),
        );
        const errors: unknown[] = [];
        let completed = 0;
        let running = 0;
        let mostAtOnce = 0;
        // Each job waits until all 10,000 run: their settlements go out together, in one store call
        // (or a few), and the broker's deliveries, which trickle in, are all held at once.
        let allRunning = (): void => {};
        const everyJobRunning = new Promise<void>((resolve) => {
          allRunning = resolve;
        });
        worker = new Worker<number>({
          queue,
          concurrency: total,
          retention: { completedCount: total },
          handler: async (job) => {
            running += 1;
            mostAtOnce = Math.max(mostAtOnce, running);
            if (running === total) allRunning();
            await everyJobRunning;
            return job.data * 2;
          },
        });
        worker.on('error', (error) => errors.push(error));
        worker.on('completed', () => {
          completed += 1;
        });
        await waitFor(() => completed === total || errors.length > 0, 60_000, 'every job settled');
        await worker.close();
        expect(errors).toEqual([]);
        expect(mostAtOnce).toBe(total);
        const counts = await queue.counts();
        expect(counts.completed).toBe(total);
        expect(counts.waiting + counts.active + counts.failed + counts.delayed).toBe(0);
        const last = await queue.getJob(added[total - 1]?.id ?? '');
        expect(last?.state).toBe('completed');
        expect(last?.result).toBe((total - 1) * 2);
      } finally {
        await worker?.close();
        await provider.deleteQueue(name).catch(() => undefined);
        await provider.close();
      }
    }, 90_000);
  },
);
