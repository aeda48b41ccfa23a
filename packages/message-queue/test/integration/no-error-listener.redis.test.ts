import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// BullMQ and bee-queue users lose the process on a Redis blip when no 'error' listener is attached
// (EventEmitter throws an unhandled 'error'). The quick start attaches none: the worker must keep
// going, the outage reported through its logger, health and metrics.
const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)(
  'a worker with no error listener (private redis-server)',
  () => {
    const server = privateRedis.redis!;
    afterAll(() => server.stop());

    it('survives Redis stopping past backendTimeoutMs and runs a job added after the restart', async () => {
      const connection = new Redis(server.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {});
      const queue = new Queue({
        name: uniqueName('no-error-listener'),
        provider: new RedisProvider({ connection }),
      });
      const done: string[] = [];
      const worker = new Worker({
        queue,
        pollIntervalMs: 100,
        backendTimeoutMs: 500,
        handler: (job) => void done.push(job.name),
      });
      try {
        await queue.add('before', null);
        await waitFor(() => done.includes('before'), 5_000, 'the first job ran');
        await server.kill();
        await sleep(1_500); // past backendTimeoutMs: the worker emits 'error' with no listener of ours
        await server.restart();
        await queue.add('after', null);
        await waitFor(() => done.includes('after'), 10_000, 'the job added after the restart ran');
        expect(done).toEqual(['before', 'after']);
      } finally {
        await worker.close();
        connection.disconnect();
      }
    }, 30_000);
  },
);
