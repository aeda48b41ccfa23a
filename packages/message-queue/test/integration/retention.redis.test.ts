import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

describe.skipIf(!redis.reachable)('retention keeps Redis memory bounded on a busy queue', () => {
  afterAll(() => redis.closeAll());

  it('trims completed jobs while processing, not only on the maintenance interval', async () => {
    const connection = redis.connect();
    const queue = new Queue({ name: uniqueName('retention'), provider: new RedisProvider({ connection }) });
    await queue.addBulk(Array.from({ length: 5_000 }, (_, n) => ({ name: 'x', data: n })));
    let done = 0;
    const worker = new Worker({
      queue,
      concurrency: 50,
      maintenanceIntervalMs: 600_000,
      retention: { completedCount: 100 },
      handler: () => undefined,
    });
    worker.on('completed', () => {
      done += 1;
    });
    await waitFor(() => done === 5_000, 30_000, '5,000 completions');
    await waitFor(async () => (await queue.counts()).completed <= 1_100, 5_000, 'the busy-worker trim');
    await worker.close();
    const keys = await connection.keys(`noa:mq:{${queue.name}}:j:*`);
    expect(keys.length).toBeLessThanOrEqual(1_100);
  });

  it('leaves nothing of a job removed on completion: a flow parent, a job that stalled once', async () => {
    const connection = redis.connect();
    const queue = new Queue<number>({
      name: uniqueName('retention'),
      provider: new RedisProvider({ connection }),
    });
    const prefix = `noa:mq:{${queue.name}}:`;
    const flow = await queue.addFlow({
      name: 'parent',
      data: 0,
      options: { removeOnComplete: true },
      children: [1, 2].map((n) => ({ name: 'child', data: n, options: { removeOnComplete: true } })),
    });
    const stalling = await queue.add('stall-once', 3, { removeOnComplete: true });
    let stalled = false;
    const done: string[] = [];
    const worker = new Worker({
      queue,
      leaseMs: 200,
      concurrency: 2,
      handler: (job) => {
        if (job.name === 'stall-once' && !stalled) {
          stalled = true;
          const until = Date.now() + 300;
          while (Date.now() < until); // past the lease: aborted, given back with a stall counted
          return new Promise((_resolve, reject) =>
            job.signal.addEventListener('abort', () => reject(job.signal.reason)),
          );
        }
        return job.data;
      },
    });
    worker.on('completed', (id) => done.push(id));
    // The stalled try is given back (a lost lease is no failed try), so nothing fails.
    let failures = 0;
    worker.on('failed', () => {
      failures += 1;
    });
    try {
      await waitFor(() => done.includes(flow.id) && done.includes(stalling.id), 10_000, 'both completions');
    } finally {
      await worker.close();
    }
    expect(stalled).toBe(true);
    expect(failures).toBe(0);
    expect(await connection.exists(`${prefix}deps:${flow.id}`)).toBe(0);
    expect(await connection.hexists(`${prefix}stalls`, stalling.id)).toBe(0);
    expect(await connection.keys(`${prefix}j:*`)).toEqual([]);
  });
});
