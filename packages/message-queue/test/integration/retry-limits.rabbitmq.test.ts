import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { decodeMessage } from '../../src/providers/record-codec.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { sleep, waitFor } from '../helpers.js';

// A retry the broker would refuse (a delay bucket past its x-expires bound, a message past its
// max_message_size) made the worker's exchange fail again and again, the job stuck in it.
const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)('RabbitMQ: a retry the broker would refuse', () => {
  const providers: RabbitMqProvider[] = [];
  const queues: [RabbitMqProvider, string][] = [];
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.close()));
    for (const [provider, name] of queues) await provider.deleteQueue(name);
    await Promise.all(providers.map((provider) => provider.close()));
  });
  const open = (options: { maxMessageBytes?: number } = {}) => {
    const provider = new RabbitMqProvider({ url, ...options });
    providers.push(provider);
    const name = uniqueName('retry-limits');
    queues.push([provider, name]);
    return { provider, name, queue: new Queue({ name, provider }) };
  };

  it('a custom backoff past maxDelayMs is clamped to it: the job waits delayed, the worker exchanges without error', async () => {
    const { queue } = open();
    const errors: string[] = [];
    let tries = 0;
    const worker = new Worker({
      queue,
      backoffStrategies: { forever: () => 2 ** 40 },
      handler: () => {
        tries += 1;
        throw new Error('fails');
      },
    });
    workers.push(worker as Worker);
    worker.on('error', (error: Error) => errors.push(error.message));
    await queue.add('x', null, { attempts: 3, backoff: { type: 'custom', strategy: 'forever' } });
    await waitFor(async () => (await queue.counts()).delayed === 1, 10_000, 'the retry to wait delayed');
    await sleep(1_000);
    // Before: each exchange failed on the delay queue's x-expires (PRECONDITION_FAILED) in a loop.
    expect(errors).toEqual([]);
    expect(tries).toBe(1);
    expect(await queue.counts()).toMatchObject({ delayed: 1, waiting: 0, failed: 0 });
  });

  it('a retry grown past maxMessageBytes by its error is dead-lettered with a MessageTooLargeError entry', async () => {
    const { queue, name } = open({ maxMessageBytes: 2_048 });
    const errors: string[] = [];
    let tries = 0;
    const worker = new Worker({
      queue,
      handler: () => {
        tries += 1;
        throw new Error(`boom ${'e'.repeat(4_000)}`);
      },
    });
    workers.push(worker as Worker);
    worker.on('error', (error: Error) => errors.push(error.message));
    await queue.add('x', { n: 1 }, { attempts: 5, backoff: { type: 'fixed', delayMs: 0 } });
    await waitFor(async () => (await queue.counts()).failed === 1, 10_000, 'the job in the DLQ');
    await sleep(500);
    // Before: every exchange failed with MessageTooLargeError, the job neither retried nor dead.
    expect(errors).toEqual([]);
    expect(tries).toBe(1);
    expect(await queue.counts()).toMatchObject({ delayed: 0, waiting: 0, failed: 1 });
    const connection = await amqp.connect(url);
    try {
      const channel = await connection.createChannel();
      const message = await channel.get(`${name}.dead`, { noAck: false });
      expect(message).not.toBe(false);
      const record = decodeMessage((message as amqp.GetMessage).content)!;
      expect(record.data).toEqual({ n: 1 });
      expect(record.attemptsMade).toBe(1);
      const last = record.errors.at(-1)!;
      expect(last).toMatchObject({
        attempt: 1,
        name: 'MessageTooLargeError',
        code: 'NOA_MQ_MESSAGE_TOO_LARGE',
      });
      expect(last.message).toContain('boom e');
      expect((message as amqp.GetMessage).content.length).toBeLessThanOrEqual(2_048);
      channel.nack(message as amqp.GetMessage, false, true);
      await channel.close();
    } finally {
      await connection.close();
    }
  });
});
