import { breakerOptionsSchema } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisGuard } from '../src/l2/redis-guard.js';
import { RedisTier, writeOrderOf } from '../src/l2/redis-tier.js';
import { CacheMetrics } from '../src/metrics.js';

/**
 * Every read sends the writes its client's caches gathered first (see read-order.test.ts, which
 * shows that on Redis). On a Cluster a `getMany` reads each key with its own GET: it looks for
 * gathered writes once, as it starts, not again per key (the repeats could find nothing: the
 * first sent them all, synchronously, before any GET). No server: a client that never connects
 * (its reads fail at once, as the guard sends nothing to a client that is not connected).
 */
describe('a getMany on a Cluster', () => {
  const clients: Cluster[] = [];
  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect();
  });

  it.each([1, 3, 40])('looks for the client’s gathered writes once for %i keys', async (count) => {
    const client = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    clients.push(client);
    const guard = new RedisGuard({
      operationTimeoutMs: 1_000,
      breaker: breakerOptionsSchema.parse({}),
      onBackendError: 'degrade',
      metrics: new CacheMetrics(),
      logger: recordingLogger(),
      logIntervalMs: 60_000,
    });
    const tier = new RedisTier(client, 'p:', guard, () => Date.now());
    const order = writeOrderOf(client);
    let looks = 0;
    Object.defineProperty(order, 'batching', {
      get: () => {
        looks += 1;
        return undefined;
      },
    });
    const keys = Array.from({ length: count }, (_, index) => `k${index}`);
    const read = tier.getManyOrFailed(keys, 'failed' as const);
    expect(looks).toBe(1);
    expect(await read).toEqual(keys.map(() => 'failed'));
  });
});
