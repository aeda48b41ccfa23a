import { maxTimerMs } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';

/** The `connection` option of the Redis-backed classes: an ioredis 5 client or cluster. */
export const redisConnectionOption = z.custom<Redis | Cluster>(
  (value) => typeof value === 'object' && value !== null && 'evalsha' in value && 'duplicate' in value,
  { message: 'expected an ioredis Redis or Cluster instance' },
);

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
