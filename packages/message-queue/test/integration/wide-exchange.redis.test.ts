import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

// Lua's unpack() fails past ~8,000 values ("too many results to unpack"); a worker at the
// largest concurrency the options allow (10,000) leases and settles more than that in one exchange.
describe.skipIf(!redis.reachable)('an exchange wider than Lua unpack() takes (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('a worker of concurrency 10,000 leases, runs and settles 10,000 jobs at once, results kept', async () => {
    const queue = new Queue<number>({
      name: uniqueName('wide'),
      provider: new RedisProvider({ connection: redis.connect() }),
    });
    const total = 10_000;
    const added = await queue.addBulk(Array.from({ length: total }, (_, n) => ({ name: 'work', data: n })));
    const errors: unknown[] = [];
    let completed = 0;
    let running = 0;
    let mostAtOnce = 0;
    const worker = new Worker({
      queue,
      concurrency: total,
      retention: { completedCount: total },
      handler: async (job) => {
        running += 1;
        mostAtOnce = Math.max(mostAtOnce, running);
        await sleep(200);
        running -= 1;
        return job.data * 2;
      },
    });
    worker.on('error', (error) => errors.push(error));
    worker.on('completed', () => {
      completed += 1;
    });
    await waitFor(() => completed === total || errors.length > 0, 60_000, 'every job settled');
    await worker.close();
    expect(errors).toEqual([]);
    expect(mostAtOnce).toBeGreaterThan(8_000);
    const counts = await queue.counts();
    expect(counts.completed).toBe(total);
    expect(counts.waiting + counts.active + counts.failed).toBe(0);
    const last = await queue.getJob(added[total - 1]?.id ?? '');
    expect(last?.state).toBe('completed');
    expect(last?.result).toBe((total - 1) * 2);
  }, 90_000);
});
