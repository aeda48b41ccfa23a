import { isReachable, serviceUrl, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore, RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

// A result Redis cannot take: the exchange carrying it is one argument over the server's
// proto-max-bulk-len (512 MiB by default, 1 MiB here, Redis's floor). The server refused the
// whole exchange and dropped the connection, so the worker retried that exchange for ever and ran
// nothing else. Now the try fails with ResultTooLargeError (retried or dead-lettered by the
// job's policy), results that fit each but not together are stored in several calls, and the
// worker goes on.
const privateRedis = await startPrivateRedisOrSkip(['--proto-max-bulk-len', '1mb']);
const rabbitUrl = serviceUrl('rabbitmq');
const rabbitReachable = await isReachable('rabbitmq');
if (!rabbitReachable) console.log(`skipped (RabbitMQ cases): no RabbitMQ at ${rabbitUrl}`);

/** A 2 MiB result, over the 1 MiB limit alone. */
const huge = 'r'.repeat(2 * 1024 * 1024);
/** 600 KB: under the limit alone, over it with another of its size. */
const large = (n: number) => `${n}`.repeat(600 * 1024);

describe.skipIf(privateRedis.skip !== undefined)('a job result over what Redis takes', () => {
  const connections: Redis[] = [];
  const closers: (() => Promise<void>)[] = [];
  const connect = () => {
    const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null });
    // Before the fix, the server dropped the connection on each refused argument.
    connection.on('error', () => {});
    connections.push(connection);
    return connection;
  };
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    for (const connection of connections) connection.disconnect();
    await privateRedis.redis?.stop();
  });

  async function scenario(provider: QueueProvider, name: string) {
    const queue = new Queue<{ n: number }>({ name, provider });
    const errors: string[] = [];
    const failures: { id: string; code: unknown; willRetry: boolean; message: string }[] = [];
    const completed: string[] = [];
    const worker = new Worker<{ n: number }, string>({
      queue,
      concurrency: 2,
      pollIntervalMs: 50,
      handler: (job) => (job.data.n === 1 ? huge : job.data.n === 2 ? 'small' : large(job.data.n)),
    });
    closers.push(() => worker.close(1_000));
    worker.on('error', (error: Error) => errors.push(error.message.slice(0, 100)));
    worker.on('failed', (id, error, willRetry) =>
      failures.push({
        id,
        code: (error as { code?: unknown }).code,
        willRetry,
        message: error.message,
      }),
    );
    worker.on('completed', (id) => completed.push(id));
    const big = await queue.add('big', { n: 1 }, { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } });
    const small = await queue.add('small', { n: 2 });
    // Before: no failed event ever came (every exchange refused) and the small job never ran.
    await waitFor(
      () => failures.length === 2 && completed.length === 1,
      15_000,
      'both tries and the small job',
    );
    expect(failures.map(({ id, code, willRetry }) => ({ id, code, willRetry }))).toEqual([
      { id: big.id, code: 'NOA_MQ_RESULT_TOO_LARGE', willRetry: true },
      { id: big.id, code: 'NOA_MQ_RESULT_TOO_LARGE', willRetry: false },
    ]);
    expect(failures[0]!.message).toMatch(/result of job .* bytes/);
    expect(completed).toEqual([small.id]);
    const [dead] = await queue.dlq.list();
    expect(dead?.id).toBe(big.id);
    expect(dead?.errors.map((entry) => entry.message)).toEqual([failures[0]!.message, failures[1]!.message]);

    // Two results that fit one by one but not in one argument: both stored.
    const [three, four] = await queue.addBulk([
      { name: 'large', data: { n: 3 } },
      { name: 'large', data: { n: 4 } },
    ]);
    await waitFor(() => completed.length === 3, 15_000, 'both large results');
    expect(new Set(completed.slice(1))).toEqual(new Set([three!.id, four!.id]));
    expect((await queue.getJob(three!.id))?.result).toBe(large(3));
    expect((await queue.getJob(four!.id))?.result).toBe(large(4));
    expect(errors).toEqual([]);
  }

  it('RedisProvider: the try fails with ResultTooLargeError, retries, dead-letters; the worker goes on', async () => {
    const provider = new RedisProvider({ connection: connect() });
    closers.push(() => provider.close());
    await scenario(provider, uniqueName('oversized-result'));
  }, 40_000);

  it.skipIf(!rabbitReachable)(
    'RabbitMQ + RedisJobStateStore: the same, the message held until the failure is stored',
    async () => {
      const name = uniqueName('oversized-result');
      const provider = new RabbitMqProvider({
        url: rabbitUrl,
        state: new RedisJobStateStore({ connection: connect(), prefix: uniqueName('oversized-result') }),
      });
      closers.push(async () => {
        await provider.deleteQueue(name);
        await provider.close();
      });
      await scenario(provider, name);
    },
    40_000,
  );
});
