import { isReachable, serviceUrl, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MessageTooLargeError, Queue } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore, RedisProvider } from '../../src/redis.js';

// A payload Redis cannot take in one argument (over proto-max-bulk-len: 1 MiB here, Redis's
// floor; 512 MiB by default).
const privateRedis = await startPrivateRedisOrSkip(['--proto-max-bulk-len', '1mb']);
const rabbitUrl = serviceUrl('rabbitmq');
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped (state store case): no RabbitMQ at ${rabbitUrl}`);

describe.skipIf(privateRedis.skip !== undefined)('an added payload over what Redis takes', () => {
  const connections: Redis[] = [];
  afterAll(async () => {
    for (const connection of connections) connection.disconnect();
    await privateRedis.redis?.stop();
  });

  it('is refused at add, and the connection goes on serving other adds', async () => {
    const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    connections.push(connection);
    const queue = new Queue<{ blob: string }>({
      name: uniqueName('oversized-add'),
      provider: new RedisProvider({ connection }),
      addTimeoutMs: 5_000,
    });
    const error = await queue
      .add('big', { blob: 'b'.repeat(2 * 1024 * 1024) })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).details).toMatchObject({ maxBytes: 1024 * 1024 });
    expect((error as Error).message).toMatch(/proto-max-bulk-len/);
    // A flow with one such child is refused whole.
    await expect(
      queue.addFlow({
        name: 'p',
        data: { blob: '' },
        children: [{ name: 'c', data: { blob: 'c'.repeat(2 * 1024 * 1024) } }],
      }),
    ).rejects.toBeInstanceOf(MessageTooLargeError);
    expect((await queue.add('small', { blob: 'ok' })).added).toBe(true);
    expect(await queue.counts()).toMatchObject({ waiting: 1, waitingChildren: 0 });
  });

  it.skipIf(!rabbitUp)(
    'is refused the same way by RabbitMQ + a RedisJobStateStore on that Redis',
    async () => {
      const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {});
      connections.push(connection);
      const provider = new RabbitMqProvider({
        url: rabbitUrl,
        state: new RedisJobStateStore({ connection }),
      });
      const queue = new Queue<{ blob: string }>({
        name: uniqueName('oversized-add'),
        provider,
        addTimeoutMs: 5_000,
      });
      try {
        await expect(queue.add('big', { blob: 'b'.repeat(2 * 1024 * 1024) })).rejects.toBeInstanceOf(
          MessageTooLargeError,
        );
        await expect(
          queue.addFlow({
            name: 'p',
            data: { blob: '' },
            children: [{ name: 'c', data: { blob: 'c'.repeat(2 * 1024 * 1024) } }],
          }),
        ).rejects.toBeInstanceOf(MessageTooLargeError);
        expect((await queue.add('small', { blob: 'ok' })).added).toBe(true);
        expect(await queue.counts()).toMatchObject({ waiting: 1, waitingChildren: 0 });
      } finally {
        await queue.drain({ delayed: true });
        await provider.deleteQueue(queue.name);
        await provider.close();
      }
    },
  );
});
