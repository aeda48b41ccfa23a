/**
 * Redis evicts keys under memory pressure unless its policy is `noeviction` (or no `maxmemory`
 * is set). The packages that keep state in Redis (rate-limit counters, cache tag sets) cannot
 * prevent an eviction; they read the policy once and say so. No Redis client is imported here:
 * the client is typed by the little it needs.
 */

/** The policy named by an `INFO memory` reply when Redis may evict keys, else undefined. */
export function redisEvictingPolicy(info: string): string | undefined {
  const maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0);
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (maxmemory === 0 || policy === undefined || policy === 'noeviction') return undefined;
  return policy;
}

/** What {@link whenRedisMayEvict} needs of an ioredis client (`Redis` or `Cluster`). */
export interface RedisInfoClient {
  readonly status?: string;
  info?(section: string): Promise<string>;
  once?(event: 'ready', listener: () => void): unknown;
}

/**
 * Once `client` is ready, reads `INFO memory` (one call, off every caller's path) and calls
 * `evicting` with the policy when Redis may evict keys. Best effort: a server that refuses INFO
 * (an ACL without `@dangerous`, a managed Redis that renamed it) or fails it is left unchecked.
 */
export function whenRedisMayEvict(client: RedisInfoClient, evicting: (policy: string) => void): void {
  if (typeof client.info !== 'function' || typeof client.once !== 'function') return;
  const check = () => {
    client.info!('memory').then(
      (info) => {
        const policy = redisEvictingPolicy(info);
        if (policy !== undefined) evicting(policy);
      },
      () => {},
    );
  };
  if (client.status === 'ready') check();
  else client.once('ready', check);
}
