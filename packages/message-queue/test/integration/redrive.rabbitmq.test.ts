import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)('dlq.retryAll on RabbitMQ without a state store', () => {
  it('moves the jobs dead at the call once, while a worker dead-letters them again', async () => {
    const provider = new RabbitMqProvider({ url });
    const queue = new Queue({ name: uniqueName('redrive'), provider });
    const jobs = 200;
    const runs = new Map<string, number>();
    let failedForGood = 0;
    const worker = new Worker({
      queue,
      concurrency: 50,
      handler: (job) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        throw new Error('still failing');
      },
    });
    worker.on('failed', (_id, _error, willRetry) => {
      if (!willRetry) failedForGood += 1;
    });
    try {
      await queue.addBulk(
        Array.from({ length: jobs }, (_, n) => ({ name: 'job', data: { n }, options: { attempts: 1 } })),
      );
      await waitFor(() => failedForGood === jobs, 10_000, 'every job dead-lettered');
      await waitFor(async () => (await queue.counts()).failed === jobs, 5_000, 'the DLQ to hold every job');
      // Before: the redrive kept taking the jobs the worker dead-lettered again (each with fresh
      // attempts) from the DLQ it was emptying, and returned only when it won the race.
      const moved = await Promise.race([
        queue.dlq.retryAll(),
        new Promise<string>((resolve) => setTimeout(() => resolve('still redriving after 10 s'), 10_000)),
      ]);
      expect(moved).toBe(jobs);
      await waitFor(() => failedForGood === 2 * jobs, 10_000, 'every redriven job dead-lettered again');
      await waitFor(
        async () => (await queue.counts()).failed === jobs,
        5_000,
        'the DLQ to hold every job again',
      );
      expect(new Set(runs.values())).toEqual(new Set([2]));
    } finally {
      await worker.close();
      await provider.deleteQueue(queue.name);
      await provider.close();
    }
  }, 60_000);
});
