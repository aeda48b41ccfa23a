import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!reachable)('RabbitMQ: what the broker would refuse is refused at add, typed', () => {
  const providers: RabbitMqProvider[] = [];
  const queues: [RabbitMqProvider, string][] = [];
  const open = (options: { maxMessageBytes?: number } = {}) => {
    const provider = new RabbitMqProvider({ url, ...options });
    providers.push(provider);
    const name = uniqueName('limits');
    queues.push([provider, name]);
    return new Queue({ name, provider });
  };
  afterAll(async () => {
    for (const [provider, name] of queues) await provider.deleteQueue(name);
    await Promise.all(providers.map((provider) => provider.close()));
  });

  it('a delay past what every provider supports is a ConfigError on delay; the longest allowed is taken', async () => {
    const queue = open();
    // Before: accepted by the schema, then the broker refused the delay queue's x-expires with
    // a raw amqplib error.
    await expect(queue.add('late', null, { delay: 1e15 })).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
      fields: ['delay'],
    });
    expect((await queue.add('latest', null, { delay: 4_200_000_000 })).added).toBe(true);
    expect((await queue.counts()).delayed).toBe(1);
  });

  it('a message over the broker default max_message_size is MessageTooLargeError naming its size and the limit', async () => {
    const queue = open();
    const big = 'x'.repeat(128 * 1024 * 1024 + 1024);
    const error = await queue.add('big', { big }).catch((caught: unknown) => caught);
    // Before: the broker closed the channel and add() rejected with amqplib's bare "channel closed".
    expect(error).toMatchObject({ code: 'NOA_MQ_MESSAGE_TOO_LARGE', details: { queue: queue.name } });
    const { bytes, maxBytes } = (error as { details: { bytes: number; maxBytes: number } }).details;
    expect(bytes).toBeGreaterThan(big.length);
    expect(maxBytes).toBeLessThanOrEqual(128 * 1024 * 1024);
    expect((error as Error).message).toContain(String(bytes));
    expect((error as Error).message).toContain(String(maxBytes));
    expect((await queue.add('small', null)).added).toBe(true);
    expect((await queue.counts()).waiting).toBe(1);
  }, 60_000);

  it('maxMessageBytes sets the limit; nothing of a batch with a message over it is published', async () => {
    const queue = open({ maxMessageBytes: 1_024 });
    const error = await queue
      .addBulk([
        { name: 'small', data: null },
        { name: 'big', data: 'y'.repeat(2_000) },
      ])
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'NOA_MQ_MESSAGE_TOO_LARGE', details: { maxBytes: 1_024 } });
    expect((await queue.counts()).waiting).toBe(0);
  });
});
