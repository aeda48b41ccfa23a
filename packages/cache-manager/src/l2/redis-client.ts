import type { Cluster, Redis } from 'ioredis';

/** An ioredis 5 client: a single node (`new Redis()`) or a cluster (`new Redis.Cluster()`). */
export type RedisClient = Redis | Cluster;

/** True for an ioredis Cluster client. */
export function isCluster(client: RedisClient): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}
