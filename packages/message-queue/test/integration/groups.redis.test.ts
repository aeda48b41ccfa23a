import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, RedisProvider, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

describe.skipIf(!redis.reachable)('groups: weighted fair dispatch (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('3 tenants weighted 3:2:1 with 2,000 jobs each are dispatched 3:2:1 (±10%) while backlogged', async () => {
    const queue = new Queue<{ tenant: string }>({
      name: uniqueName('groups'),
      provider: new RedisProvider({ connection: redis.connect() }),
    });
    await queue.pause();
    for (const tenant of ['gold', 'silver', 'bronze']) {
      await queue.addBulk(
        Array.from({ length: 2_000 }, () => ({ name: 'work', data: { tenant }, options: { group: tenant } })),
      );
    }
    const order: string[] = [];
    const worker = new Worker({
      queue,
      concurrency: 20,
      groups: { weights: { gold: 3, silver: 2, bronze: 1 } },
      handler: (job) => {
        order.push(job.data.tenant);
      },
    });
    await queue.resume();
    // Every group stays backlogged for the first 3,600 (bronze gets 600 of its 2,000).
    await waitFor(() => order.length >= 3_600, 30_000, '3,600 jobs');
    await worker.close();
    const window = order.slice(0, 3_600);
    const share = (tenant: string) => window.filter((value) => value === tenant).length / window.length;
    console.log(
      `groups: gold ${share('gold').toFixed(3)} silver ${share('silver').toFixed(3)} bronze ${share('bronze').toFixed(3)}`,
    );
    expect(Math.abs(share('gold') / (3 / 6) - 1)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(share('silver') / (2 / 6) - 1)).toBeLessThanOrEqual(0.1);
    expect(Math.abs(share('bronze') / (1 / 6) - 1)).toBeLessThanOrEqual(0.1);
  });
});
