import { type Logger, type RedisInfoClient, whenRedisMayEvict } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { nextReady } from './client-watches.js';

/**
 * Redis evicts keys under memory pressure unless its policy is `noeviction` (or no `maxmemory`
 * is set). Every key of the limiter has an expiry, so the `volatile-*` policies evict them as
 * `allkeys-*` do, and an evicted counter (or block) lifts its key's limit: Redis then holds no
 * trace of it, and a check cannot tell it from a key never seen. The store cannot prevent it;
 * it says so, once.
 */

/**
 * Once `client` is ready, reads `INFO memory` (one call, off the check path) and warns on
 * `logger` when Redis may evict the limiter's keys. Best effort: a server that refuses INFO (an
 * ACL without `@dangerous`, a managed Redis that renamed it) or fails it is left unchecked.
 */
export function warnIfEvicting(client: Redis | Cluster, logger: Logger): void {
  const warn = () =>
    whenRedisMayEvict(client as RedisInfoClient, (policy) => {
      logger.warn(
        `RedisStore: Redis has a maxmemory with maxmemory-policy ${policy}: it may evict rate-limit counters, blocks and namespace records, which lifts those keys' limits; give the limiter a Redis with maxmemory-policy noeviction (see "Production Redis" in the README)`,
        { component: 'rate-limiter', maxmemoryPolicy: policy },
      );
    });
  // Not connected yet: one 'ready' listener shared by the stores on the client (client-watches.ts).
  if (client.status === 'ready') warn();
  else void nextReady(client).then(warn);
}
