import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

// The records of a rule's namespaces (RedisStore.recordNamespace) are read and expired by Redis:
// they are scored and expired in Redis's own clock, so that an app server whose clock is off
// neither drops another server's live record nor writes one that expires at once.

const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${serviceUrl('redis')}`);

const dayMs = 86_400_000;
const ttlMs = 600_000;

/** Makes this process's `Date.now()` read `offsetMs` off the real clock. */
function skewHostClock(offsetMs: number): void {
  const real = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => real() + offsetMs);
}

/** Redis's clock, in ms. */
async function redisNowMs(client: Redis): Promise<number> {
  const [seconds, micros] = await client.time();
  return Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000);
}

describe.skipIf(!redisUp)('namespace records are timed by Redis, not by the app server', () => {
  const client = new Redis(serviceUrl('redis'), recommendedRedisOptions);
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await client.quit();
  });

  it("a server whose clock is a day ahead keeps another server's live record", async () => {
    const prefix = `${uniqueName('rlnsclock')}:`;
    const store = new RedisStore({ client, prefix });
    await store.recordNamespace('api:default', 'api:default:aaaa:', ttlMs);
    skewHostClock(dayMs);
    await store.recordNamespace('api:default', 'api:default:bbbb:', ttlMs);
    expect((await store.recordedNamespaces('api:default')).sort()).toEqual([
      'api:default:aaaa:',
      'api:default:bbbb:',
    ]);
    const record = `${prefix}{api:default}:namespaces`;
    // Scored and expired in Redis time: ttlMs from Redis's now, not a day later.
    const now = await redisNowMs(client);
    for (const score of (await client.zrange(record, 0, -1, 'WITHSCORES')).filter((_, index) => index % 2))
      expect(Number(score)).toBeLessThanOrEqual(now + ttlMs);
    expect(await client.pttl(record)).toBeLessThanOrEqual(ttlMs);
    expect(await client.pttl(record)).toBeGreaterThan(ttlMs - 60_000);
    await client.del(record);
  });

  it('a server whose clock is a day behind writes a record that lasts its whole lifetime', async () => {
    const prefix = `${uniqueName('rlnsclock')}:`;
    const store = new RedisStore({ client, prefix });
    skewHostClock(-dayMs);
    await store.recordNamespace('api:default', 'api:default:aaaa:', ttlMs);
    expect(await store.recordedNamespaces('api:default')).toEqual(['api:default:aaaa:']);
    const record = `${prefix}{api:default}:namespaces`;
    expect(await client.pttl(record)).toBeGreaterThan(ttlMs - 60_000);
    const [, score] = await client.zrange(record, 0, -1, 'WITHSCORES');
    expect(Math.abs(Number(score) - ((await redisNowMs(client)) + ttlMs))).toBeLessThan(60_000);
    // A refresh from a server on time keeps the record (its score is raised, never lowered).
    vi.restoreAllMocks();
    await store.recordNamespace('api:default', 'api:default:aaaa:', ttlMs);
    expect(await store.recordedNamespaces('api:default')).toEqual(['api:default:aaaa:']);
    await client.del(record);
  });
});
