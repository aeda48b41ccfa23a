import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoBlockSchema } from '../../src/auto-block.js';
import { MemoryStore, type RateLimitStore, RedisStore, recommendedRedisOptions } from '../../src/index.js';
import type { LimitPolicy } from '../../src/policy.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const limits: LimitPolicy[] = [{ name: 'd', algorithm: 'fixed-window', limit: 1, windowMs: 3_600_000 }];
// One refusal blocks; each repeat offence doubles the block, up to 700 ms.
const block = autoBlockSchema.parse({
  violations: 1,
  withinMs: 60_000,
  blockMs: 200,
  multiplier: 2,
  maxBlockMs: 700,
});

/** The block length each offence started, read right after it (one more refusal once the last ended). */
async function blockLengths(store: RateLimitStore, key: string, offences: number): Promise<number[]> {
  await store.consume(key, limits, [1], block);
  const lengths: number[] = [];
  for (let offence = 0; offence < offences; offence += 1) {
    const [refused] = await store.consume(key, limits, [1], block);
    expect(refused!.decisions[0]!.allowed).toBe(false);
    const [probe] = await store.consume(key, limits, [0], block);
    lengths.push(probe!.blockedMs);
    await sleep(probe!.blockedMs + 30);
  }
  return lengths;
}

describe.skipIf(skip !== undefined)('auto-block grows for repeat offenders on Redis as in memory', () => {
  let client: Redis;
  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
  });
  afterAll(() => client.disconnect());

  it('blocks 200, 400, then 700 ms (capped) on both stores', async () => {
    const redis = new RedisStore({ client, prefix: `${uniqueName('rlab')}:` });
    const memory = new MemoryStore();
    const [onRedis, inMemory] = await Promise.all([
      blockLengths(redis, 'offender', 3),
      blockLengths(memory, 'offender', 3),
    ]);
    // Each is read just after the block began: at most its full length, and a little less on a
    // slow machine (100 ms of slack still tells 200, 400 and 700 apart).
    for (const lengths of [onRedis, inMemory])
      [200, 400, 700].forEach((expected, offence) => {
        expect(lengths[offence]).toBeLessThanOrEqual(expected);
        expect(lengths[offence]).toBeGreaterThan(expected - 100);
      });
    await memory.close();
  });
});
