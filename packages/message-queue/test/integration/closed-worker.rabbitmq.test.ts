import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const redisUp = await isReachable('redis');

const variants = [
  { label: 'AMQP only', state: false, skip: false },
  { label: 'with a Redis job state store', state: true, skip: !redisUp },
];

describe.skipIf(!reachable)('RabbitMQ: a closed worker on a provider that stays open', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `takes no more deliveries: every later job goes to another process's worker (${variant.label})`,
      async () => {
        const connection = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const prefix = uniqueName('closed-worker');
        const open = () =>
          new RabbitMqProvider({
            url,
            ...(connection ? { state: new RedisJobStateStore({ connection, prefix }) } : {}),
          });
        const first = open();
        const second = open();
        const name = uniqueName('closed-worker');
        const worker = new Worker({
          queue: new Queue({ name, provider: first }),
          concurrency: 5,
          handler: () => 'ok',
        });
        let other: Worker<{ n: number }> | undefined;
        try {
          const queue = new Queue({ name, provider: first });
          const done = new Promise((resolve) => worker.once('completed', resolve));
          await queue.add('first', null);
          await done;
          await worker.close();
          for (let n = 0; n < 20; n += 1) await queue.add('later', { n });
          await sleep(300);
          const ran: number[] = [];
          other = new Worker<{ n: number }>({
            queue: new Queue<{ n: number }>({ name, provider: second }),
            concurrency: 5,
            handler: (job) => {
              ran.push(job.data.n);
            },
          });
          // Before: the closed worker's consumer stayed subscribed, and the broker held up to its
          // prefetch of the later jobs unacknowledged on it for as long as the provider lived.
          await waitFor(() => ran.length === 20, 5_000, 'all 20 later jobs on the other worker');
          expect(ran.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n));
        } finally {
          await worker.close();
          await other?.close();
          await first.deleteQueue(name);
          await first.close();
          await second.close();
          await connection?.quit();
        }
      },
      30_000,
    );

    it.skipIf(variant.skip)(
      `leaves another worker of the queue on the same provider consuming (${variant.label})`,
      async () => {
        const connection = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const provider = new RabbitMqProvider({
          url,
          ...(connection
            ? { state: new RedisJobStateStore({ connection, prefix: uniqueName('closed-worker') }) }
            : {}),
        });
        const name = uniqueName('closed-worker');
        const queue = new Queue<{ n: number }>({ name, provider });
        const ran: string[] = [];
        const start = (label: string) =>
          new Worker<{ n: number }>({
            queue,
            concurrency: 2,
            pollIntervalMs: 100,
            handler: () => {
              ran.push(label);
            },
          });
        const leaving = start('leaving');
        const staying = start('staying');
        try {
          await queue.add('first', { n: -1 });
          await waitFor(() => ran.length === 1);
          await leaving.close();
          for (let n = 0; n < 20; n += 1) await queue.add('later', { n });
          // The consumer both workers fetched from was cancelled by the first one's close; the
          // other's next fetch starts it again.
          await waitFor(() => ran.length === 21, 5_000, 'all 20 later jobs on the staying worker');
          expect(ran.slice(1).every((label) => label === 'staying')).toBe(true);
        } finally {
          await leaving.close();
          await staying.close();
          await provider.deleteQueue(name);
          await provider.close();
          await connection?.quit();
        }
      },
      30_000,
    );
  }
});
