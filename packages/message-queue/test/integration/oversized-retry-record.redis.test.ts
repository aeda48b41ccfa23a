import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

// A job added near the server's largest argument (proto-max-bulk-len: 1 MiB here, Redis's floor)
// whose retry record, with its error history (each message bounded, but up to 16,384 UTF-16
// units of 4-byte characters, twice in the entry: the record and the error), is over it. The
// server refused every exchange carrying that failure, so the worker ran nothing else. The
// failure's error history is now cut to fit (messages with a marker, then older entries).
const privateRedis = await startPrivateRedisOrSkip(['--proto-max-bulk-len', '1mb']);

describe.skipIf(privateRedis.skip !== undefined)('Redis: a retry record near the size limit', () => {
  afterAll(() => privateRedis.redis?.stop());

  it('is stored with its error history cut to fit; the job retries, dead-letters, and the other jobs run', async () => {
    const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {}); // the server drops the connection on a refused argument
    const provider = new RedisProvider({ connection });
    const queue = new Queue<{ n: number; pad: string }>({ name: uniqueName('near_limit'), provider });
    const errors: string[] = [];
    const failures: { id: string; willRetry: boolean }[] = [];
    const completed: string[] = [];
    // 16,384 UTF-16 units: kept whole by the worker's message bound, 64 KiB of UTF-8.
    const message = '😀'.repeat(8_192);
    const pad = 'd'.repeat(1_000_000);
    const worker = new Worker({
      queue,
      concurrency: 2,
      handler: (job) => {
        if (job.data.n === 1) throw new Error(message);
        return 'ok';
      },
    });
    worker.on('error', (error: Error) => errors.push(error.message.slice(0, 100)));
    worker.on('failed', (id, _error, willRetry) => failures.push({ id, willRetry }));
    worker.on('completed', (id) => completed.push(id));
    try {
      const big = await queue.add(
        'big',
        { n: 1, pad },
        { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } },
      );
      const small = await Promise.all([1, 2, 3].map(() => queue.add('small', { n: 2, pad: '' })));
      // Before: the exchange carrying the failure was refused ('ERR Protocol error: invalid bulk
      // length') again and again: no failed event, and no small job's completion got through.
      await waitFor(
        () => failures.length === 2 && completed.length === 3,
        15_000,
        'both tries and the small jobs',
      );
      expect(failures).toEqual([
        { id: big.id, willRetry: true },
        { id: big.id, willRetry: false },
      ]);
      expect(completed.sort()).toEqual(small.map((job) => job.id).sort());
      expect(errors).toEqual([]);
      const [dead] = await queue.dlq.list();
      expect(dead?.id).toBe(big.id);
      // The job's own data is whole; its error history says it was cut.
      expect((dead!.data as { pad: string }).pad).toBe(pad);
      expect(dead?.attemptsMade).toBe(2);
      expect(dead?.errors.length).toBeGreaterThanOrEqual(1);
      const newest = dead!.errors.at(-1)!;
      expect(newest.attempt).toBe(2);
      expect(newest.message.length).toBeLessThan(message.length);
      expect(newest.message).toContain(`truncated from ${message.length} characters`);
    } finally {
      await worker.close(1_000);
      await provider.close();
      connection.disconnect();
    }
  }, 60_000);
});
