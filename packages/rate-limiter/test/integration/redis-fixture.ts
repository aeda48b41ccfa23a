import type { PrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { recommendedRedisOptions } from '../../src/redis.js';
import type { Target } from './redis-targets.js';

/** The connections of a suite on its private Redis (see {@link privateRedisConnections}). */
export interface PrivateRedisConnections {
  /** Plain options (queues while connecting): CONFIG, INFO, SCRIPT/FUNCTION FLUSH, CLIENT PAUSE. */
  readonly admin: Redis;
  /** `recommendedRedisOptions`, connected before the suite's first test: the stores' client. */
  readonly client: Redis;
}

/**
 * Call inside a `describe`: an admin connection and a store client on `server` (both lazy, so a
 * skipped suite, whose server is undefined, connects nothing), the client connected in a
 * `beforeAll`; after the suite, both disconnected and the server stopped. Registered first in a
 * describe, its `afterAll` runs after the suite's own (hooks run as a stack), so limiters close
 * while their connection is still up.
 */
export function privateRedisConnections(server: PrivateRedis | undefined): PrivateRedisConnections {
  // A skipped suite's connections are never used: any address does.
  const url = server?.url ?? 'redis://127.0.0.1:1';
  const admin = new Redis(url, { lazyConnect: true });
  const client = new Redis(url, { ...recommendedRedisOptions, lazyConnect: true });
  beforeAll(async () => {
    await client.connect();
  });
  afterAll(async () => {
    admin.disconnect();
    client.disconnect();
    await server?.stop();
  });
  return { admin, client };
}

/**
 * Call inside a `describe`: the target's connection, made in a `beforeAll` and stopped (its
 * client and, for a private cluster, its servers) after the suite's own `afterAll`.
 */
export function targetConnection(target: Target): {
  readonly client: Awaited<ReturnType<Target['connect']>>['client'];
} {
  let connection: Awaited<ReturnType<Target['connect']>> | undefined;
  beforeAll(async () => {
    connection = await target.connect();
  });
  afterAll(async () => {
    await connection?.stop();
  });
  return {
    get client() {
      if (connection === undefined)
        throw new Error(`${target.name}: not connected yet (use it in a test or hook)`);
      return connection.client;
    },
  };
}
