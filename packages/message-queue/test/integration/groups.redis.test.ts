import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { expectWeightedDispatch } from './groups-scenario.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

describe.skipIf(!redis.reachable)('groups: weighted fair dispatch (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('3 tenants weighted 3:2:1 with 2,000 jobs each are dispatched 3:2:1 (±10%) while backlogged', async () => {
    const queue = new Queue<{ tenant: string }>({
      name: uniqueName('groups'),
      provider: new RedisProvider({ connection: redis.connect() }),
    });
    await expectWeightedDispatch(queue, 'groups', 30_000);
  });

  it('keeps no state of a group once it has no jobs (one group per user: memory stays bounded)', async () => {
    const connection = redis.connect();
    const queue = new Queue<number>({
      name: uniqueName('groups'),
      provider: new RedisProvider({ connection }),
    });
    const credits = `noa:mq:{${queue.name}}:credits`;
    let done = 0;
    const worker = new Worker({
      queue,
      concurrency: 20,
      retention: { completedCount: 0 },
      handler: () => {
        done += 1;
      },
    });
    try {
      for (let round = 0; round < 3; round += 1) {
        await queue.addBulk(
          Array.from({ length: 2_000 }, (_, n) => ({
            name: 'x',
            data: n,
            options: { group: `user-${round}-${n}` },
          })),
        );
        const started = Date.now();
        await waitFor(() => done === (round + 1) * 2_000, 30_000, `round ${round}`).catch((error) => {
          throw new Error(`${error.message} (done ${done})`);
        });
        console.log(`round ${round}: ${Date.now() - started} ms`);
      }
      // One exchange after the last jobs finds their groups empty.
      await queue.add('last', 0, { group: 'user-last' });
      await waitFor(() => done === 6_001, 5_000, 'the last job');
      await waitFor(
        async () => (await connection.hlen(credits)) <= 20,
        5_000,
        'credits of groups without jobs dropped',
      );
    } finally {
      await worker.close();
    }
    expect(await connection.hlen(credits)).toBeLessThanOrEqual(20);
  });
});
