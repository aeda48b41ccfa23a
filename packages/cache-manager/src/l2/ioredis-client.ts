import type { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './redis-client.js';

/** An ioredis 5.4+ or 6 client: a single node (`new Redis()`) or a cluster (`new Redis.Cluster()`). */
export type IoRedisClient = Redis | Cluster;

/** True for an ioredis Cluster client. */
export function isCluster(client: IoRedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

/**
 * How long after a command's node connection closed an ioredis Cluster may still send it:
 * it retries such a command every `retryDelayOnFailover` ms, up to `maxRedirections` times
 * (ioredis's defaults: 100 ms, 16). 0 for a single node, or with `retryDelayOnFailover: 0`.
 */
export function clusterResendWindowMs(client: IoRedisClient): number {
  if (!isCluster(client)) return 0;
  const { retryDelayOnFailover = 100, maxRedirections = 16 } = client.options;
  return retryDelayOnFailover > 0 ? retryDelayOnFailover * maxRedirections : 0;
}

/**
 * True for a client that finds its master through Redis Sentinel (`sentinels` given) without
 * `failoverDetector: true`: after a `SENTINEL FAILOVER` it stays on the old master until the
 * sentinels demote it (about 10 s), and what it writes there meanwhile is lost.
 */
export function sentinelWithoutFailoverDetector(client: IoRedisClient): boolean {
  if (isCluster(client)) return false;
  const { sentinels, failoverDetector } = client.options;
  return Array.isArray(sentinels) && sentinels.length > 0 && failoverDetector !== true;
}

/**
 * How many connection attempts `client` (a single node or a Cluster) has seen fail since it was
 * last ready. ioredis counts every close since then in `retryAttempts` (reset on `ready`): the
 * first is the drop of a working connection (or the first attempt of a client never ready), and
 * each one after it an attempt that failed. ioredis keeps the count private, hence the cast;
 * without it (another major version) this is 0, and calls wait for the next attempt as before.
 *
 * Why a private member: only the past matters here (a client the cache never watched), and no
 * public one tells it. `status` is `reconnecting` after the drop of a working connection as
 * much as after failed attempts, so it cannot tell a blink (`CLIENT KILL`, held calls go
 * through a moment later) from an outage (they should fail at once); the `reconnecting` event
 * and its delay, and `retryStrategy`'s `times`, reach only a listener or a strategy present
 * at the time (wrapping the user's `retryStrategy` would also change their option, and still
 * not see the past). The read is pinned by `test/ioredis-client.test.ts`, which fails by name
 * if an ioredis upgrade renames or drops the counter.
 */
export function failedAttempts(client: IoRedisClient): number {
  const closes = (client as unknown as { retryAttempts?: unknown }).retryAttempts;
  return typeof closes === 'number' && Number.isFinite(closes) ? Math.max(0, closes - 1) : 0;
}

/**
 * `client` as the ioredis class it is: the public {@link RedisClient} type only names the members
 * that tell an ioredis client apart (the option is checked at construction), while the tiers use
 * ioredis's own types. Called once per cache, at construction.
 */
export function ioRedisClient(client: RedisClient): IoRedisClient {
  return client as unknown as IoRedisClient;
}
