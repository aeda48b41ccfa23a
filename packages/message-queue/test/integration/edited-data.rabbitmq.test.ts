import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { decodeMessage } from '../../src/providers/record-codec.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

// RabbitMQ without a state store has no getJob nor DLQ listing, so the conformance case sees only
// the retries there: the dead letter's payload is read off the broker's DLQ here.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)("RabbitMQ: a handler's edits of job.data", () => {
  const provider = new RabbitMqProvider({ url });
  const name = uniqueName('edited-data');
  const queue = new Queue<{ count: number; items: number[] }>({ name, provider });
  let worker: Worker | undefined;
  afterAll(async () => {
    await worker?.close();
    await provider.deleteQueue(name);
    await provider.close();
  });

  it('reach neither its retry nor its dead letter', async () => {
    const added = { count: 0, items: [1, 2, 3] };
    await queue.add('edits', added, { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } });
    const seen: unknown[] = [];
    worker = new Worker({
      queue,
      handler: (job) => {
        seen.push(structuredClone(job.data));
        job.data.count += 1;
        job.data.items.pop();
        throw new Error('fails');
      },
    }) as Worker;
    await waitFor(async () => (await queue.counts()).failed === 1, 10_000, 'the job in the DLQ');
    expect(seen).toEqual([added, added]);
    const connection = await amqp.connect(url);
    try {
      const channel = await connection.createChannel();
      const message = await channel.get(`${name}.dead`, { noAck: false });
      expect(message).not.toBe(false);
      const record = decodeMessage((message as amqp.GetMessage).content)!;
      expect(record.data).toEqual(added);
      expect(record.attemptsMade).toBe(2);
      channel.nack(message as amqp.GetMessage, false, true);
      await channel.close();
    } finally {
      await connection.close();
    }
  });
});
