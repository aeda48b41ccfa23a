import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

// What the README says of drain on RabbitMQ without a store: it purges the messages the broker
// holds ready; deliveries already pushed to a consumer (its prefetch window) are not ready, and
// still run.
describe.skipIf(!reachable)('drain on RabbitMQ without a store', () => {
  it('purges the ready messages; the deliveries a consumer already holds still run', async () => {
    const provider = new RabbitMqProvider({ url, prefetch: 3 });
    const queue = new Queue<number>({ name: uniqueName('drain'), provider });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const ran: number[] = [];
    const worker = new Worker({
      queue,
      prefetch: 0,
      handler: async (job) => {
        ran.push(job.data);
        await gate;
      },
    });
    try {
      await queue.addBulk(Array.from({ length: 10 }, (_, n) => ({ name: 'x', data: n })));
      await waitFor(() => ran.length === 1);
      // The consumer holds 3 deliveries (its prefetch): 1 running, 2 pushed but not started.
      await waitFor(async () => (await queue.counts()).waiting === 7);
      expect(await queue.drain()).toBe(7);
      release();
      await waitFor(() => ran.length === 3);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(ran).toEqual([0, 1, 2]);
    } finally {
      release();
      await worker.close();
      await provider.deleteQueue(queue.name);
      await provider.close();
    }
  });
});
