/**
 * Redis evicts keys under memory pressure unless its policy is `noeviction` (or no `maxmemory`
 * is set). Evicted values, leases and the shared structures list cost misses; an evicted tag set
 * costs more: `deleteByTag`/`expireByTag` no longer find the values it named, which are served
 * until their TTL. Tag sets carry an expiry, so the `volatile-*` policies evict them as
 * `allkeys-*` do. The cache cannot prevent it; it says so.
 */

/** The policy named by an `INFO memory` reply when Redis may evict keys, else undefined. */
export function evictingPolicy(info: string): string | undefined {
  const maxmemory = Number(/^maxmemory:(\d+)/m.exec(info)?.[1] ?? 0);
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (maxmemory === 0 || policy === undefined || policy === 'noeviction') return undefined;
  return policy;
}

/** What {@link whenEvicting} needs of an ioredis client (Redis or Cluster). */
interface InfoClient {
  readonly status?: string;
  info?(section: string): Promise<string>;
  once?(event: 'ready', listener: () => void): unknown;
}

/**
 * Once `client` is ready, reads `INFO memory` (one call, off every caller's path) and calls
 * `evicting` with the policy when Redis may evict keys. Best effort: a server that refuses INFO
 * (an ACL without `@dangerous`, a managed Redis that renamed it) or fails it is left unchecked.
 */
export function whenEvicting(client: InfoClient, evicting: (policy: string) => void): void {
  if (typeof client.info !== 'function' || typeof client.once !== 'function') return;
  const check = () => {
    client.info!('memory').then(
      (info) => {
        const policy = evictingPolicy(info);
        if (policy !== undefined) evicting(policy);
      },
      () => {},
    );
  };
  if (client.status === 'ready') check();
  else client.once('ready', check);
}
