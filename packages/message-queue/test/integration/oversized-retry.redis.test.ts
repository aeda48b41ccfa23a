import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

// A retry Redis cannot store: the record, its error added, is over the server's largest
// argument (proto-max-bulk-len: 512 MiB by default, 1 MiB here, Redis's floor). The server
// refuses the whole exchange carrying it, so the worker retried that exchange for ever and ran
// nothing else. The error history's messages are now bounded, so a retry's record stays near
// the size of the job that was added.
const privateRedis = await startPrivateRedisOrSkip(['--proto-max-bulk-len', '1mb']);

describe.skipIf(privateRedis.skip !== undefined)(
  'Redis: a retry whose error is over what the server takes',
  () => {
    afterAll(() => privateRedis.redis?.stop());

    it('is stored with the error message cut; it retries, dead-letters, and the worker runs the next job', async () => {
      const connection = new Redis(privateRedis.redis!.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {}); // the server drops the connection on a refused argument
      const provider = new RedisProvider({ connection });
      const queue = new Queue<{ n: number }>({ name: uniqueName('oversized'), provider });
      const tries = new Map<number, number>();
      const errors: string[] = [];
      const failures: { id: string; willRetry: boolean; whole: boolean }[] = [];
      const completed: string[] = [];
      const huge = `boom ${'e'.repeat(2 * 1024 * 1024)}`;
      const worker = new Worker({
        queue,
        handler: (job) => {
          tries.set(job.data.n, (tries.get(job.data.n) ?? 0) + 1);
          if (job.data.n === 1) throw new Error(huge);
          return 'ok';
        },
      });
      worker.on('error', (error: Error) => errors.push(error.message.slice(0, 100)));
      // The event carries the handler's own error, whole.
      worker.on('failed', (id, error, willRetry) =>
        failures.push({ id, willRetry, whole: error.message === huge }),
      );
      worker.on('completed', (id) => completed.push(id));
      try {
        const big = await queue.add('big', { n: 1 }, { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } });
        const small = await queue.add('small', { n: 2 });
        // Before: no failed event ever came (every exchange refused: 'ERR Protocol error: invalid
        // bulk length'), and the small job never ran.
        await waitFor(
          () => failures.length === 2 && completed.length === 1,
          10_000,
          'both tries and the small job',
        );
        expect(failures).toEqual([
          { id: big.id, willRetry: true, whole: true },
          { id: big.id, willRetry: false, whole: true },
        ]);
        expect(completed).toEqual([small.id]);
        expect(tries.get(1)).toBe(2);
        expect(errors).toEqual([]);
        const [dead] = await queue.dlq.list();
        expect(dead?.id).toBe(big.id);
        expect(dead?.errors).toHaveLength(2);
        for (const entry of dead!.errors) {
          expect(entry.message.startsWith('boom eee')).toBe(true);
          expect(entry.message.length).toBeLessThan(20_000);
          expect(entry.message).toContain(`truncated from ${huge.length} characters`);
        }
      } finally {
        await worker.close(1_000);
        await provider.close();
        connection.disconnect();
      }
    }, 30_000);
  },
);
