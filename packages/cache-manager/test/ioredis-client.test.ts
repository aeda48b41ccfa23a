import { sparePort } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { failedAttempts, type IoRedisClient } from '../src/l2/ioredis-client.js';

/** Resolves on the `count`-th `event` of `client` from now. */
function nth(client: IoRedisClient, event: string, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const listener = () => {
      seen += 1;
      if (seen < count) return;
      client.off(event, listener);
      resolve();
    };
    client.on(event, listener);
  });
}

/**
 * `failedAttempts` reads ioredis's private `retryAttempts` (no public member or past event tells
 * a cache created on an already-failing client how it has fared; see ioredis-client.ts). Should
 * an ioredis upgrade rename or drop it, `failedAttempts` falls back to 0 and the cache still
 * works, only slower to fail on such a client: these tests say so by name rather than let it go
 * unnoticed. No server: the clients connect to a port nothing listens on.
 */
describe('failedAttempts: the private ioredis counter it reads', () => {
  const clients: IoRedisClient[] = [];
  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect();
  });

  it.each([
    ['Redis', (port: number) => new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 20 })],
    [
      'Cluster',
      (port: number) =>
        new Cluster([{ host: '127.0.0.1', port }], { lazyConnect: true, clusterRetryStrategy: () => 20 }),
    ],
  ])('%s still keeps retryAttempts, counting every close since it was last ready', async (_, create) => {
    const client: IoRedisClient = create(await sparePort());
    clients.push(client);
    client.on('error', () => {});
    const counter = (client as unknown as { retryAttempts?: unknown }).retryAttempts;
    expect(
      counter,
      'ioredis no longer has a numeric retryAttempts: failedAttempts() now reads 0, so a cache created on a client already failing holds its first calls until the next attempt fails; find what replaced it (src/l2/ioredis-client.ts)',
    ).toBe(0);
    expect(failedAttempts(client)).toBe(0);
    const failing = nth(client, 'reconnecting', 3);
    client.connect().catch(() => {});
    await failing;
    // Three closes: the first attempt, then two more attempts, all refused.
    expect(
      failedAttempts(client),
      'ioredis no longer counts closes in retryAttempts as failedAttempts() expects (src/l2/ioredis-client.ts)',
    ).toBeGreaterThanOrEqual(2);
  });
});
