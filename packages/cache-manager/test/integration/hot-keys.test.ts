import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

describe.skipIf(!redisUp)('hot keys across restarts', () => {
  const prefix = testPrefix('cm_hot');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  afterAll(async () => {
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('close() saves the hottest L1 keys and a new instance starts with them in L1', async () => {
    const before = new Cache({
      redis,
      prefix,
      hotKeys: 3,
      l1: { policy: 'lfu' },
      operationTimeoutMs: generousDeadlineMs,
    });
    for (let index = 0; index < 10; index += 1) await before.set(`k${index}`, index);
    for (let round = 0; round < 5; round += 1) {
      for (const key of ['k7', 'k8', 'k9']) await before.get(key);
    }
    await before.close();

    const after = new Cache({ redis, prefix, hotKeys: 3, operationTimeoutMs: generousDeadlineMs });
    await after.ready();
    expect(['k7', 'k8', 'k9'].map((key) => after.getLocal(key))).toEqual([7, 8, 9]);
    expect(after.getLocal('k1')).toBeUndefined();
    await after.close();
  });
});
