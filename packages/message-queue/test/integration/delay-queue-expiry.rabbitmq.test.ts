import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';
import { stateVariants } from './private-rabbit-setup.js';

// A delay queue is declared with `x-expires` (its bucket + `delayQueueIdleMs`, 60 s by default)
// so unused buckets go away. The broker deletes such a queue that long after its last declare,
// whatever is published to it (publishing does not renew the lease, and the messages in it are
// deleted with it). A provider declared each delay queue once per connection: a minute later the
// queue was gone, and every delayed add or retry published to it was confirmed by the broker and
// silently dropped. The provider here sets the shortest idle time so the case waits 3 s, not 61.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const variants = await stateVariants();
const delayQueueIdleMs = 2_000;

describe.skipIf(!reachable).concurrent('RabbitMQ: a delay queue outlives its first declare', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `a delayed job added past the x-expires of its bucket's first declare still runs (${variant.label})`,
      async () => {
        const redis = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const provider = new RabbitMqProvider({
          url,
          delayQueueIdleMs,
          ...(redis ? { state: new RedisJobStateStore({ connection: redis }) } : {}),
        });
        const queue = new Queue({ name: uniqueName('delay-expiry'), provider });
        const ran: string[] = [];
        const worker = new Worker({ queue, handler: (job) => void ran.push(job.name) });
        try {
          await queue.add('first', null, { delay: 100 });
          await waitFor(() => ran.includes('first'), 10_000, 'the first delayed job ran');
          // Past the delay queue's x-expires (100 ms bucket + 2 s) since the provider declared it.
          await sleep(delayQueueIdleMs + 1_000);
          await queue.add('second', null, { delay: 100 });
          await waitFor(() => ran.includes('second'), 10_000, 'the second delayed job ran');
          expect(ran).toEqual(['first', 'second']);
        } finally {
          await worker.close();
          await provider.deleteQueue(queue.name);
          await provider.close();
          redis?.disconnect();
        }
      },
      30_000,
    );
  }
});
