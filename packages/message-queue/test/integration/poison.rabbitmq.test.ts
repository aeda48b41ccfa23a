import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
const redisUp = await isReachable('redis');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
if (!redisUp) console.log(`skipped (state store variant): no Redis at ${serviceUrl('redis')}`);

describe.skipIf(!reachable)('a message that is not a job on a RabbitMQ queue', () => {
  for (const withState of [false, true]) {
    it.skipIf(withState && !redisUp)(
      `is dead-lettered and the jobs around it run (${withState ? 'with a state store' : 'AMQP only'})`,
      async () => {
        const redis = withState ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null }) : undefined;
        const provider = new RabbitMqProvider({
          url,
          ...(redis
            ? { state: new RedisJobStateStore({ connection: redis, prefix: uniqueName('poison') }) }
            : {}),
        });
        const queue = new Queue({ name: uniqueName('poison'), provider });
        const raw = await amqp.connect(url);
        try {
          await queue.add('before', null);
          // Another application (or a bug) publishes to the queue: not JSON, and JSON that is no job.
          const channel = await raw.createConfirmChannel();
          channel.sendToQueue(queue.name, Buffer.from('not json'), { persistent: true });
          channel.sendToQueue(queue.name, Buffer.from('{"x":1}'), { persistent: true });
          await channel.waitForConfirms();
          await queue.addBulk([
            { name: 'after-1', data: null },
            { name: 'after-2', data: null },
          ]);
          const runs: string[] = [];
          const worker = new Worker({
            queue,
            concurrency: 2,
            handler: (job) => {
              runs.push(job.name);
            },
          });
          // Before: the exchange threw on the first of them at every fetch; nothing ran.
          await waitFor(() => runs.length === 3, 5_000, 'the three jobs to run');
          await worker.close();
          expect(runs.sort()).toEqual(['after-1', 'after-2', 'before']);
          const dead = await waitFor(async () => {
            const { messageCount } = await channel.checkQueue(`${queue.name}.dead`);
            return messageCount === 2 ? messageCount : undefined;
          });
          expect(dead).toBe(2);
          if (!withState) {
            // Redrive moves jobs only; what is no job stays in the DLQ instead of blocking it.
            expect(await queue.dlq.retryAll()).toBe(0);
            expect((await channel.checkQueue(`${queue.name}.dead`)).messageCount).toBe(2);
          }
          await channel.close();
        } finally {
          await raw.close();
          await provider.deleteQueue(queue.name);
          await provider.close();
          redis?.disconnect();
        }
      },
      20_000,
    );
  }
});
