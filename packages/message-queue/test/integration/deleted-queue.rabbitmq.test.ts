import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { delayBucket } from '../../src/delay-bucket.js';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

// A queue deleted under a producer (an operator, a non-replicated queue lost with its node): the
// default exchange drops a message it cannot route and the broker still confirms it, so add()
// resolved and the job was gone (the producer had declared the queue once and trusted that).
// Published `mandatory`, the broker returns it: the queue is declared again and the job sent again.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

/**
 * Adds a first job with `first` (which declares the queues), deletes `deleted(name)` from another
 * connection, adds with `after`, then runs a worker until the jobs named `expected`, and only
 * those, ran.
 */
async function afterDelete(
  label: string,
  first: (queue: Queue) => Promise<unknown>,
  deleted: (name: string) => string,
  after: (queue: Queue) => Promise<unknown>,
  expected: string[],
): Promise<void> {
  const name = uniqueName(label);
  const adding = new RabbitMqProvider({ url });
  const queue = new Queue({ name, provider: adding });
  const admin = await amqp.connect(url);
  try {
    await first(queue);
    const channel = await admin.createChannel();
    await channel.deleteQueue(deleted(name));
    await channel.close();
    await after(queue);
    const ran: string[] = [];
    const worker = new Worker({ queue, handler: (job) => void ran.push(job.name) });
    try {
      await waitFor(
        () => expected.every((job) => ran.includes(job)),
        10_000,
        'the jobs added after the delete ran',
      );
      // Exactly those: the first job went with the deleted queue.
      expect([...ran].sort()).toEqual([...expected].sort());
    } finally {
      await worker.close();
    }
  } finally {
    await adding.deleteQueue(name);
    await Promise.all([adding.close(), admin.close()]);
  }
}

describe.skipIf(!reachable)('RabbitMQ: a queue deleted under a producer', () => {
  it('add() after the delete does not lose the job: the queue is declared again and the job runs', async () => {
    await afterDelete(
      'deleted-queue',
      (queue) => queue.add('before', null),
      (name) => name,
      async (queue) => {
        await queue.add('after', { n: 1 });
        await queue.addBulk([
          { name: 'many-1', data: null },
          { name: 'many-2', data: null },
        ]);
      },
      ['after', 'many-1', 'many-2'],
    );
  }, 30_000);

  it('a delayed add after its delay queue was deleted is not lost either', async () => {
    await afterDelete(
      'deleted-delay',
      (queue) => queue.add('first', null, { delay: 200 }),
      (name) => `${name}.delay.${delayBucket(200)}`,
      (queue) => queue.add('second', null, { delay: 200 }),
      ['second'],
    );
  }, 30_000);
});
