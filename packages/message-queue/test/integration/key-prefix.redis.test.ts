import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore, RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// ioredis's `keyPrefix` prefixes the keys of the commands it sends, not the keys a Lua script
// builds: BullMQ breaks on it ("Missing lock for job", bullmq #183, #1219, #1596, #3013). Here the
// scripts wrote unprefixed keys while pause, the DLQ list and a parent's children results were
// read or written under the prefix: a paused queue ran jobs, and both came back empty.
const redisUp = await isReachable('redis');
const rabbitUp = await isReachable('rabbitmq');

const variants = [
  { label: 'RedisProvider', skip: !redisUp },
  { label: 'RabbitMQ with a RedisJobStateStore', skip: !redisUp || !rabbitUp },
];

describe.concurrent('a Redis connection with an ioredis keyPrefix', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `pause, the DLQ and flows work, and every key is under the prefix (${variant.label})`,
      async () => {
        const keyPrefix = `${uniqueName('key-prefix')}:`;
        const connection = new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null, keyPrefix });
        const raw = new Redis(serviceUrl('redis'));
        const name = uniqueName('prefixed');
        const rabbit = variant.label !== 'RedisProvider';
        const provider: QueueProvider = rabbit
          ? new RabbitMqProvider({
              url: serviceUrl('rabbitmq'),
              state: new RedisJobStateStore({ connection }),
            })
          : new RedisProvider({ connection });
        const queue = new Queue<number>({ name, provider });
        const ran: string[] = [];
        let worker: Worker<number> | undefined;
        try {
          await queue.pause();
          expect((await queue.counts()).paused).toBe(true);
          worker = new Worker<number>({
            queue,
            pollIntervalMs: 20_000, // wake-ups must come by pub/sub, on the prefixed channel
            handler: async (job) => {
              ran.push(job.name);
              if (job.name === 'parent') return job.childrenResults();
              if (job.name === 'doomed') throw new Error('doomed');
              return job.data;
            },
          });
          await queue.add('held', 1);
          await sleep(500);
          expect(ran).toEqual([]);
          await queue.resume();
          await waitFor(() => ran.includes('held'), 10_000, 'the held job ran after resume');
          await queue.add('doomed', 0, { attempts: 1 });
          const flow = await queue.addFlow({
            name: 'parent',
            data: 0,
            children: [{ name: 'child', data: 7 }],
          });
          await waitFor(async () => (await queue.getJob(flow.id))?.state === 'completed', 10_000, 'the flow');
          const parentResult = (await queue.getJob(flow.id))?.result as { results?: object } | undefined;
          expect(Object.values(parentResult?.results ?? {})).toEqual([7]);
          await waitFor(async () => (await queue.dlq.list()).length === 1, 10_000, 'the dead job listed');
          expect((await queue.dlq.list()).map((job) => job.name)).toEqual(['doomed']);
          const keys = await raw.keys(`*{${name}}*`);
          expect(keys.length).toBeGreaterThan(0);
          expect(keys.filter((key) => !key.startsWith(keyPrefix))).toEqual([]);
        } finally {
          await worker?.close();
          if (provider instanceof RabbitMqProvider) await provider.deleteQueue(name);
          await provider.close();
          const keys = await raw.keys(`*{${name}}*`);
          if (keys.length > 0) await raw.del(...keys);
          connection.disconnect();
          raw.disconnect();
        }
      },
      30_000,
    );
  }
});
