import { parseOptions } from '@noa/core';
import type { Redis, RedisOptions } from 'ioredis';
import { z } from 'zod';
import { urlScheme } from './cluster-options.js';
import { BackendUnavailableError, PoolClosedError } from './errors.js';
import { lazyPeer } from './lazy-peer.js';
import { type AcquireOptions, type CloseReport, Pool, type PoolStats } from './pool.js';
import { poolOptionsObject } from './pool-options.js';

/** Loads the optional `ioredis` peer dependency on first use. */
const loadIoredis = lazyPeer<typeof import('ioredis')>(() => import('ioredis'));

const CONNECTION_ERROR =
  /Stream isn't writeable|Connection is closed|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|socket closed/i;

/** True for errors that mean the socket is gone, whatever state ioredis reports yet. */
function isConnectionError(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (typeof code === 'string' && CONNECTION_ERROR.test(code)) ||
    (typeof message === 'string' && CONNECTION_ERROR.test(message))
  );
}

/**
 * Options of {@link createRedisPool}: the pool options plus where Redis is. Defaults are
 * small (`max` 4): ioredis multiplexes ordinary commands over one connection, so this pool is
 * only for commands that block (`BLPOP`, `XREAD BLOCK`) or need the connection to themselves
 * (`WATCH`/`MULTI`, `SUBSCRIBE`).
 */
export const redisPoolOptionsSchema = poolOptionsObject
  .extend({
    /** `redis://…` / `rediss://…` URL (or a socket path) or ioredis options. */
    redis: z.union([
      z
        .string()
        .min(1)
        .refine((url) => ['redis', 'rediss', undefined].includes(urlScheme(url)), {
          message: 'not a redis:// or rediss:// URL (another database?)',
        }),
      z.record(z.string(), z.unknown()),
    ]),
    name: z.string().min(1).default('redis'),
    max: z.number().int().positive().default(4),
    /** Connect timeout per connection. */
    connectTimeoutMs: z.number().int().positive().default(5_000),
  })
  .refine((options) => options.max >= options.min, { path: ['max'], message: 'max must be >= min' });

/** Options accepted by {@link createRedisPool}. */
export type RedisPoolOptions = Omit<z.input<typeof redisPoolOptionsSchema>, 'redis'> & {
  redis: string | RedisOptions;
};

/**
 * A small pool of dedicated ioredis connections with the same health, metrics and leak
 * detection as the SQL pools. Each connection has ioredis' own reconnection turned off: a
 * broken one is replaced by the pool, and an unreachable server fails fast.
 */
export class RedisPool {
  /** The underlying generic pool (stats, leaks, drain). */
  readonly pool: Pool<Redis>;
  #closed = false;

  constructor(options: RedisPoolOptions) {
    const { redis, connectTimeoutMs, ...poolOptions } = parseOptions(
      'redis pool',
      redisPoolOptionsSchema,
      options,
    );
    const base: RedisOptions = typeof redis === 'string' ? {} : (redis as RedisOptions);
    const url = typeof redis === 'string' ? redis : undefined;
    this.pool = new Pool<Redis>(
      {
        create: async () => {
          const { Redis: RedisClient } = await loadIoredis();
          const settings: RedisOptions = {
            connectTimeout: connectTimeoutMs,
            ...base,
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          };
          const client = url === undefined ? new RedisClient(settings) : new RedisClient(url, settings);
          client.on('error', () => {});
          try {
            await client.connect();
          } catch (error) {
            client.disconnect();
            throw error;
          }
          client.once('end', () => this.pool.invalidate(client));
          return client;
        },
        destroy: async (client) => {
          client.disconnect();
        },
        validate: async (client) => (await client.ping()) === 'PONG',
      },
      poolOptions,
    );
  }

  /** Borrows a connection (see `Pool#acquire`). */
  acquire(options?: AcquireOptions): Promise<Redis> {
    return this.pool.acquire(options);
  }

  /** Returns a connection. */
  release(client: Redis): void {
    this.pool.release(client);
  }

  /**
   * Borrows a connection for `fn` and gives it back; a connection that broke or was left in
   * a blocking or transactional state by a failure is closed instead of reused.
   */
  async use<R>(fn: (client: Redis) => Promise<R>, options?: AcquireOptions): Promise<R> {
    const client = await this.pool.acquire(options);
    let result: R;
    try {
      result = await fn(client);
    } catch (error) {
      this.pool.destroy(client);
      if (client.status !== 'ready' || isConnectionError(error)) {
        // After close() the connection was closed under the command: not an outage.
        if (this.#closed) throw new PoolClosedError(this.pool.name, error);
        throw new BackendUnavailableError(this.pool.name, { cause: error });
      }
      throw error;
    }
    this.pool.release(client);
    return result;
  }

  /** Reachability and occupancy. */
  health(): { healthy: boolean; stats: PoolStats } {
    return { healthy: !this.pool.backendDown, stats: this.pool.stats };
  }

  /** Closes every connection; reports those never released. */
  close(): Promise<CloseReport> {
    this.#closed = true;
    return this.pool.close();
  }

  /** Same as `close()`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Creates a {@link RedisPool}. */
export function createRedisPool(options: RedisPoolOptions): RedisPool {
  return new RedisPool(options);
}
