import { serviceUrl } from './env.js';
import { uniqueName } from './namespace.js';

/** Escapes Redis glob metacharacters so `prefix` matches literally in `SCAN MATCH`. */
export function escapeGlob(prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/**
 * Deletes every key starting with `prefix` on the Redis at `url` (default `REDIS_URL`) with
 * SCAN + UNLINK, never KEYS or FLUSH: the server is shared. Returns how many keys went.
 */
export async function clearRedisPrefix(prefix: string, url: string = serviceUrl('redis')): Promise<number> {
  if (prefix.length === 0) throw new Error('clearRedisPrefix needs a non-empty prefix');
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) removed += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}

/** A Redis key prefix owned by one test. */
export interface RedisPrefix {
  /** `<unique name>:` */
  readonly keyPrefix: string;
  /** Deletes the prefix's keys (SCAN + UNLINK) and returns how many there were. */
  drop(): Promise<number>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A unique key prefix on the Redis at `url`, with `drop()` removing its keys. */
export function withRedisPrefix(
  url: string = serviceUrl('redis'),
  keyPrefix = `${uniqueName('k')}:`,
): RedisPrefix {
  const drop = () => clearRedisPrefix(keyPrefix, url);
  return {
    keyPrefix,
    drop,
    [Symbol.asyncDispose]: async () => {
      await drop();
    },
  };
}
