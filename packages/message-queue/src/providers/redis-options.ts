import { maxTimerMs } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';

/**
 * The `connection` option of the Redis-backed classes: an ioredis 5.4+ or 6 client or cluster created
 * with `maxRetriesPerRequest: null` (a cluster: in `redisOptions`). With ioredis's default (20)
 * a command fails once its connection has failed 20 reconnects, so a Redis restart longer than
 * that fails lease renewals, settlements and adds instead of waiting; refused, as BullMQ's
 * workers refuse it ("maxRetriesPerRequest must be null").
 */
export const redisConnectionOption = z
  .custom<Redis | Cluster>(
    (value) => typeof value === 'object' && value !== null && 'evalsha' in value && 'duplicate' in value,
    { message: 'expected an ioredis Redis or Cluster instance' },
  )
  .superRefine((connection, context) => {
    const cluster = (connection as { isCluster?: boolean }).isCluster === true;
    const options = cluster ? (connection as Cluster).options.redisOptions : (connection as Redis).options;
    const value = options?.maxRetriesPerRequest;
    if (value === null) return;
    context.addIssue({
      code: 'custom',
      path: cluster
        ? ['options', 'redisOptions', 'maxRetriesPerRequest']
        : ['options', 'maxRetriesPerRequest'],
      message: `must be null (is ${value ?? 'unset: 20'}), so commands wait out a reconnect instead of failing: create the client with { maxRetriesPerRequest: null }, or pass redis.duplicate({ maxRetriesPerRequest: null })`,
    });
  });

/**
 * The client's own ioredis `keyPrefix` ('' when unset). ioredis adds it to the keys of the
 * commands it sends (a script's declared keys included), not to the keys a Lua script builds nor
 * to pub/sub channels: the Redis-backed classes give their scripts and channels the same prefix,
 * so every key lives under it (BullMQ breaks on a `keyPrefix`: "Missing lock for job").
 */
export function clientKeyPrefix(connection: Redis | Cluster): string {
  const keyPrefix = (connection.options as { keyPrefix?: unknown }).keyPrefix;
  return typeof keyPrefix === 'string' ? keyPrefix : '';
}

/** A key prefix option (no braces: each queue's keys carry their own `{<queue>}` hash tag). */
export function redisPrefixOption(defaultPrefix: string) {
  return z
    .string()
    .min(1)
    .regex(/^[^{}]+$/)
    .default(defaultPrefix);
}

/** The `addChunkSize` option: jobs per script call when adding in bulk. */
export const addChunkSizeOption = z.number().int().positive().max(5_000).default(1_000);

/** The `closeTimeoutMs` option: how long `close()` waits for Redis to acknowledge QUIT before it disconnects. */
export const closeTimeoutOption = z.number().int().positive().max(maxTimerMs).default(2_000);

/**
 * The `maxArgumentBytes` option: the largest argument Redis takes (its `proto-max-bulk-len`).
 * Default: read from the server (`CONFIG GET`) the first time a worker's settlements are over
 * 1 MiB together, 512 MiB (Redis's default) where `CONFIG` is refused. A result over it fails its
 * try (`ResultTooLargeError`); results that fit one by one are stored in several calls.
 */
export const maxArgumentBytesOption = z
  .number()
  .int()
  .min(1024 * 1024)
  .optional();
