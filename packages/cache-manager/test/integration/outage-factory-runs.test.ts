import { delay } from '@noa/core';
import { type PrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const started = await startPrivateRedisOrSkip();

/**
 * A full Redis outage: L2 and the bus are both out of reach, and ioredis retries the bus
 * connection, each failed attempt closing it again. Runs are suspect from a close on (see
 * `FactoryRun.suspect`), and L2 cannot be checked: the value must still be cached in L1, or
 * every call of a key runs the factory for as long as the outage lasts.
 */
describe.skipIf(started.skip !== undefined)('factory runs during a full Redis outage', () => {
  let server: PrivateRedis;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  beforeAll(() => {
    server = started.redis!;
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  it('repeated getOrSet calls of one key run a slow factory once per ttl, not once per call', async () => {
    // Reconnect attempts every 20 ms (the bus's connection inherits it): a factory slower than
    // that always sees a close of the bus connection while it runs.
    const client = new Redis(server.url, { retryStrategy: () => 20, maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix: 'outage-runs:',
      ttlMs: 60_000,
      operationTimeoutMs: 100,
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 },
    });
    caches.push(cache);
    await cache.ready();
    await server.kill();
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(120);
      return 'value';
    };
    const calls = 8;
    for (let call = 0; call < calls; call++) expect(await cache.getOrSet('k', factory)).toBe('value');
    expect(runs).toBe(1);
    await server.restart();
  });
});
