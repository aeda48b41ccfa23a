import type { Logger } from '@noa/core';

/**
 * Redis evicts keys under memory pressure unless its policy is `noeviction` (or no `maxmemory`
 * is set). Every key of the limiter has an expiry, so the `volatile-*` policies evict them as
 * `allkeys-*` do, and an evicted counter (or block) lifts its key's limit: Redis then holds no
 * trace of it, and a check cannot tell it from a key never seen. The store cannot prevent it;
 * it says so, once.
 */

/** The policy named by an `INFO memory` reply when Redis may evict keys, else undefined. */
export function evictingPolicy(info: string): string | undefined {
  const maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0);
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (maxmemory === 0 || policy === undefined || policy === 'noeviction') return undefined;
  return policy;
}

/** What {@link warnIfEvicting} needs of an ioredis client (Redis or Cluster). */
interface InfoClient {
  readonly status?: string;
  info?(section: string): Promise<string>;
  once?(event: 'ready', listener: () => void): unknown;
}

/**
 * Once `client` is ready, reads `INFO memory` (one call, off the check path) and warns on
 * `logger` when Redis may evict the limiter's keys. Best effort: a server that refuses INFO (an
 * ACL without `@dangerous`, a managed Redis that renamed it) or fails it is left unchecked.
 */
export function warnIfEvicting(client: InfoClient, logger: Logger): void {
  if (typeof client.info !== 'function' || typeof client.once !== 'function') return;
  const check = () => {
    client.info!('memory').then(
      (info) => {
        const policy = evictingPolicy(info);
        if (policy === undefined) return;
        logger.warn(
          `RedisStore: Redis has a maxmemory with maxmemory-policy ${policy}: it may evict rate-limit counters, blocks and namespace records, which lifts those keys' limits; give the limiter a Redis with maxmemory-policy noeviction (see "Production Redis" in the README)`,
          { component: 'rate-limiter', maxmemoryPolicy: policy },
        );
      },
      () => {},
    );
  };
  if (client.status === 'ready') check();
  else client.once('ready', check);
}
