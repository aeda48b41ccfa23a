import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();
const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(!redis.reachable)('graceful shutdown (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('close() with 100 jobs in flight drains them within the deadline: none stalled or duplicated', async () => {
    const queue = new Queue({
      name: uniqueName('close'),
      provider: new RedisProvider({ connection: redis.connect() }),
    });
    await queue.addBulk(Array.from({ length: 150 }, (_, n) => ({ name: 'work', data: n })));
    const runs = new Map<string, number>();
    const worker = new Worker({
      queue,
      concurrency: 100,
      handler: async (job) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        await sleep(200 + Math.random() * 300);
      },
    });
    await waitFor(() => worker.activeCount === 100, 10_000, '100 jobs in flight');
    const deadlineMs = 2_000;
    const started = performance.now();
    await worker.close(deadlineMs);
    const took = performance.now() - started;
    expect(took).toBeLessThan(deadlineMs + 1_000);
    const counts = await queue.counts();
    expect(counts.active).toBe(0);
    expect(counts.completed).toBe(runs.size);
    expect([...runs.values()].every((count) => count === 1)).toBe(true);
    expect(counts.waiting).toBe(150 - runs.size);
  });

  it('a job past its timeout sees its signal abort and its slot is reused', async () => {
    const queue = new Queue({
      name: uniqueName('timeout'),
      provider: new RedisProvider({ connection: redis.connect() }),
    });
    await queue.add('hang', null, { timeout: 200, attempts: 1 });
    await queue.addBulk(Array.from({ length: 3 }, () => ({ name: 'quick', data: null })));
    let aborted: unknown;
    const done: string[] = [];
    const worker = new Worker({
      queue,
      concurrency: 1,
      handler: (job) => {
        if (job.name === 'quick') return 'ok';
        return new Promise((_resolve, reject) => {
          job.signal.addEventListener('abort', () => {
            aborted = job.signal.reason;
            // A handler that ignores its signal would keep running; this one stops.
            reject(job.signal.reason);
          });
        });
      },
    });
    worker.on('completed', (id) => done.push(id));
    await waitFor(() => done.length === 3, 5_000, 'the quick jobs to run in the freed slot');
    expect((aborted as Error).name).toBe('JobTimeoutError');
    await worker.close();
    expect((await queue.dlq.list()).map((job) => job.name)).toEqual(['hang']);
  });
});

describe.skipIf(privateRedis.skip !== undefined)('shutdown with Redis gone (private redis-server)', () => {
  it('worker.close() and provider.close() resolve when Redis dies before the worker starts', async () => {
    const server = privateRedis.redis!;
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    try {
      const provider = new RedisProvider({ connection });
      const queue = new Queue<number>({ name: uniqueName('close-redis-down'), provider });
      await queue.add('work', 1);
      await server.kill();
      // Its subscription and its first fetch now wait on a Redis that is gone. The backend's
      // share of close() is bounded by backendCloseTimeoutMs (default 5 s): 300 ms here.
      const errors: Error[] = [];
      const worker = new Worker({
        queue,
        concurrency: 2,
        pollIntervalMs: 50,
        backendCloseTimeoutMs: 300,
        handler: async () => {},
      });
      worker.on('error', (error) => errors.push(error));
      await sleep(200);
      const closed = (work: Promise<void>, withinMs: number) =>
        Promise.race([work.then(() => 'closed'), sleep(withinMs).then(() => 'still waiting')]);
      // Generous (500 + 300 ms, and the machine's noise), and below the 5 s default.
      expect(await closed(worker.close(500), 3_000)).toBe('closed');
      // Given up on at the bound, and said so.
      expect(errors).toContainEqual(
        expect.objectContaining({
          code: 'NOA_TIMEOUT',
          details: expect.objectContaining({ timeoutMs: 300 }),
        }),
      );
      expect(await closed(provider.close(), 10_000)).toBe('closed');
    } finally {
      connection.disconnect();
      await server.stop();
    }
  });
});
