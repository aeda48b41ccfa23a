import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { stateVariants } from './private-rabbit-setup.js';

// The broker cancels a consumer itself (basic.cancel; amqplib calls the consume callback with
// null) when its queue is deleted or, in a cluster, when the node holding it goes down. The channel stays open, so nothing looked lost: the worker
// stopped receiving jobs for ever (amqplib #176, #736).
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const variants = await stateVariants();

describe.skipIf(!reachable)('RabbitMQ: a consumer the broker cancels', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `is started again: a job added after its queue was deleted and declared again runs (${variant.label})`,
      async () => {
        const redis = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const stateOf = () => (redis ? { state: new RedisJobStateStore({ connection: redis }) } : {});
        const name = uniqueName('consumer-cancel');
        const consuming = new RabbitMqProvider({ url, ...stateOf() });
        const adding = new RabbitMqProvider({ url, ...stateOf() });
        const ran: string[] = [];
        const worker = new Worker({
          queue: new Queue({ name, provider: consuming }),
          handler: (job) => void ran.push(job.name),
        });
        const other = new Queue({ name, provider: adding });
        const admin = await amqp.connect(url);
        try {
          await other.add('before', null);
          await waitFor(() => ran.includes('before'), 10_000, 'the first job ran');
          // An operator (or a cluster failover) takes the queue away under the consumer.
          const channel = await admin.createChannel();
          await channel.deleteQueue(name);
          await channel.close();
          // Another process declares it again (its first add) and adds to it.
          await adding.deleteQueue(name);
          await other.add('after', null);
          await waitFor(() => ran.includes('after'), 10_000, 'the job added after the cancel ran');
          expect(ran).toEqual(['before', 'after']);
        } finally {
          await worker.close();
          await adding.deleteQueue(name);
          await Promise.all([consuming.close(), adding.close(), admin.close()]);
          redis?.disconnect();
        }
      },
      30_000,
    );
  }
});
