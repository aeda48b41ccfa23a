import { uniqueName } from '@noa/testkit';
import { afterAll, describe, it } from 'vitest';
import { Queue } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
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
});
