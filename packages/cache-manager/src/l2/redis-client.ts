/**
 * The `redis` option: an ioredis 5.4+ or 6 client, a single node (`new Redis()`) or a cluster
 * (`new Cluster()`). Typed by the members the cache calls to tell one apart and set up its tiers,
 * not as ioredis's classes, so that the cache's declarations do not import ioredis: it is an
 * optional peer, and a memory-only app compiled with `skipLibCheck: false` would need it
 * installed (TS2307). Both ioredis classes satisfy it (type-tested); the cache relies on ioredis's
 * behaviour beyond these members (its offline queue, pipelines, Cluster redirections), so a client
 * of another library that happens to fit is not supported.
 */
export interface RedisClient {
  /** `true` for a Cluster client. */
  readonly isCluster: boolean;
  /** Connection state: `wait`, `connecting`, `ready`, `end`… */
  readonly status: string;
  /** A new client with the same options (the bus's subscriber connection). */
  duplicate(): RedisClient;
  /** Runs a loaded Lua script. */
  evalsha(sha1: string, numkeys: number, ...args: (string | Buffer | number)[]): Promise<unknown>;
  /** Reads many values as bytes (L2's MGET batches). */
  mgetBuffer(...keys: string[]): Promise<(Buffer | null)[]>;
  /** Queues commands sent together. */
  pipeline(): unknown;
  /** Publishes a bus message. */
  publish(channel: string, message: string): Promise<number>;
  /** Connection and message events. */
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}
