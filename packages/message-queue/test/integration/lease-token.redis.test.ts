import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, RedisProvider } from '../../src/index.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

describe.skipIf(!redis.reachable)('Redis lease tokens', () => {
  afterAll(() => redis.closeAll());

  it('a job leased before lease tokens existed (active without one) is still renewed and settled', async () => {
    const connection = redis.connect();
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('legacy-lease'), provider });
    const { id } = await queue.add('old', null);
    const lease = (now: number) => ({
      fetch: 1,
      leaseUntil: now + 60_000,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    const [record] = (await provider.exchange(queue.name, { settle: [], ...lease(Date.now()) })).jobs;
    expect(record?.lease).toBeDefined();
    // As a worker of the previous version left it: in the active set, no token in `leases`.
    expect(await connection.hdel(`noa:mq:{${queue.name}}:leases`, id)).toBe(1);
    const now = Date.now();
    expect(await provider.extendLeases(queue.name, [record!], now + 60_000, now)).toEqual({
      cancelled: [],
      lost: [],
    });
    const settled = await provider.exchange(queue.name, {
      settle: [{ kind: 'complete', record: record!, result: 'ok' }],
      ...lease(now),
      fetch: 0,
    });
    expect(settled.stale).toBeUndefined();
    const info = await queue.getJob(id);
    expect(info?.state).toBe('completed');
    expect(info?.result).toBe('ok');
    await provider.close();
  });
});
