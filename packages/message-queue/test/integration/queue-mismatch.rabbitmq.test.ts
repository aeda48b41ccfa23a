import { isReachable, recordingLogger, serviceUrl, uniqueName } from '@noa/testkit';
import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { BrokerRefusedError, Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { sleep, waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)('RabbitMQ: a queue that exists with other arguments', () => {
  it('add() and the worker report a typed refusal naming the queue, without a reconnect loop', async () => {
    const name = uniqueName('mismatch');
    const admin = await amqp.connect(url);
    const channel = await admin.createChannel();
    // Declared elsewhere without the provider's arguments (x-max-priority, dead-lettering).
    await channel.assertQueue(name, { durable: true });
    const logger = recordingLogger();
    const provider = new RabbitMqProvider({ url, logger });
    const queue = new Queue({ name, provider });
    const errors: Error[] = [];
    let worker: Worker | undefined;
    try {
      const refused = await queue.add('job', { n: 1 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toBeInstanceOf(BrokerRefusedError);
      expect(refused).toMatchObject({ code: 'NOA_MQ_BROKER_REFUSED', details: { queue: name } });
      expect((refused as Error).message).toContain(name);
      expect((refused as Error).message).toContain('PRECONDITION_FAILED');
      worker = new Worker({ queue, handler: () => 'ok', pollIntervalMs: 100 });
      worker.on('error', (error) => errors.push(error));
      await waitFor(() => errors.length > 0, 5_000, 'a worker error');
      await sleep(1_500);
      expect(errors[0]).toBeInstanceOf(BrokerRefusedError);
      // Before: every refusal closed the connection's channel, taken for a lost connection, and
      // the reconnect succeeded at once (~110 reconnects/s, no worker error). Now the connection
      // stays and the worker's retries back off (50 ms doubling to 2 s: about 6 in 1.5 s).
      expect(logger.messages('warn').filter((message) => message.includes('connection lost')).length).toBe(0);
      expect(errors.length).toBeLessThan(15);
    } finally {
      await worker?.close(500);
      await channel.deleteQueue(name);
      await admin.close();
      await provider.close();
    }
  }, 30_000);
});
