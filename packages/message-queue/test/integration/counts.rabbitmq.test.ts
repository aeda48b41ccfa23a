import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Queue } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)(
  'delayed jobs on RabbitMQ without a state store (README: provider matrix, counts)',
  () => {
    it('are counted and drained by the provider that declared their delay queue, not by another one', async () => {
      const producer = new RabbitMqProvider({ url });
      const other = new RabbitMqProvider({ url });
      const name = uniqueName('delayed-counts');
      const queue = new Queue({ name, provider: producer });
      const elsewhere = new Queue({ name, provider: other });
      try {
        await queue.add('later', null, { delay: 60_000 });
        // A delay is a queue per delay bucket, and AMQP cannot list queues: another process does
        // not know this one's buckets (documented: counts and drain see their own).
        expect((await queue.counts()).delayed).toBe(1);
        expect((await elsewhere.counts()).delayed).toBe(0);
        expect(await elsewhere.drain({ delayed: true })).toBe(0);
        expect((await queue.counts()).delayed).toBe(1);
        expect(await queue.drain({ delayed: true })).toBe(1);
        expect((await queue.counts()).delayed).toBe(0);
      } finally {
        await producer.deleteQueue(name);
        await producer.close();
        await other.close();
      }
    });
  },
);
