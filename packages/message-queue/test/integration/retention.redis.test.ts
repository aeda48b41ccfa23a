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
});
