import type { Logger } from '@noa/core';
import { delay } from '@noa/core';
import {
  clearRedisPrefix,
  generousDeadlineMs,
  isReachable,
  type PrivateRedis,
  type RecordingLogger,
  serviceUrl,
  uniqueName,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';

/** The shared Redis URL and whether it answers (tests skip, loudly, when it does not). */
export const redisUrl = serviceUrl('redis');
export const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${redisUrl}`);

/** A unique key prefix for one test file. */
export function testPrefix(label: string): string {
  return `${uniqueName(label)}:`;
}

/** Deletes every key under `prefix` on the shared Redis (SCAN, never FLUSH: the server is shared). */
export function dropPrefix(prefix: string): Promise<number> {
  return clearRedisPrefix(prefix, redisUrl);
}

/** Nearest-rank quantile. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/** The real client, counting the calls of the named methods (the commands still go to Redis). */
export function counting(
  redis: Redis,
  methods: readonly string[],
): { client: Redis; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const client = new Proxy(redis, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== 'function') return value;
      const name = String(property);
      if (!methods.includes(name)) return value.bind(target);
      return (...args: unknown[]) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        return (value as (...all: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { client, calls };
}

/**
 * Records the most commands `client` had sent and not yet had answered at once (ioredis's
 * `commandQueue`, read after each command is sent, pipelines included). A batch sent in chunks
 * keeps it at about a chunk's; one sent all at once puts the whole batch in it, however fast
 * the machine is (a short deadline catches that only on a quiet machine).
 */
export function trackAwaitingReplies(client: Redis): { most: () => number } {
  let most = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
    const sent = send(...args);
    most = Math.max(most, client.commandQueue.length);
    return sent;
  }) as Redis['sendCommand'];
  return { most: () => most };
}

/**
 * Caches on the shared Redis under one test file's own prefix (`open` waits for `ready()`);
 * after the file they are closed and the prefix is dropped. Their `operationTimeoutMs` is
 * `generousDeadlineMs` unless `options` say otherwise: these tests are not about deadlines.
 */
export function sharedRedisCaches(label: string): {
  prefix: string;
  redis: Redis | undefined;
  open: (options?: CacheOptions) => Promise<Cache>;
} {
  const prefix = testPrefix(label);
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });
  const open = async (options: CacheOptions = {}) => {
    const cache = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  return { prefix, redis, open };
}

export { Redis };

/**
 * Caches on a private redis-server (`startPrivateRedisOrSkip`'s result) for one `describe`
 * block: `open` connects a client of its own (errors swallowed: tests pause and stop the
 * server) and waits for `ready()`; `admin` is a plain client, `client()` another one. After the
 * block every cache and client is closed and the server stopped.
 */
export function privateRedisCaches(
  started: { redis?: PrivateRedis | undefined },
  defaults: CacheOptions,
): {
  readonly server: PrivateRedis;
  readonly admin: Redis;
  open: (options?: CacheOptions) => Promise<Cache>;
  /** `open`, connecting to `url` (a proxy in front of the server) instead of the server. */
  openAt: (url: string, options?: CacheOptions) => Promise<Cache>;
  client: () => Redis;
} {
  let server: PrivateRedis | undefined;
  let admin: Redis | undefined;
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  beforeAll(() => {
    server = started.redis!;
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await server?.stop();
  });
  const openAt = async (url: string, options: CacheOptions = {}): Promise<Cache> => {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({ redis: client, ...defaults, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  };
  return {
    get server() {
      return server!;
    },
    get admin() {
      return admin!;
    },
    open: (options: CacheOptions = {}) => openAt(server!.url, options),
    openAt,
    client(): Redis {
      const client = new Redis(server!.url);
      client.on('error', () => {});
      clients.push(client);
      return client;
    },
  };
}

/** Resolves once `cache` has applied a bus message naming `name` (a key or a tag). */
export function heard(cache: Cache, name: string): Promise<void> {
  return new Promise((resolve) => {
    const stop = cache.onInvalidation((message) => {
      if (!message.k.includes(name)) return;
      stop();
      resolve();
    });
  });
}

/**
 * A logger that notes the bus's "reconnected" log lines, and readers of whether one came and of
 * how many: a case with several reconnects waits for one past the count it took before the
 * restart it means (the flag alone may have been set by an earlier one).
 */
export function resyncWatcher(): { logger: Logger; resynced: () => boolean; resyncs: () => number } {
  let resyncs = 0;
  const logger: Logger = {
    debug: () => {},
    info: (message: string) => {
      if (message.startsWith('invalidation bus reconnected')) resyncs += 1;
    },
    warn: () => {},
    error: () => {},
  };
  return { logger, resynced: () => resyncs > 0, resyncs: () => resyncs };
}

/**
 * Polls `check` every 10 ms until it holds, for up to `timeoutMs`: whether it held. For a test
 * that needs another party to have progressed (a bus message heard, a background delete run):
 * it returns as soon as that happened, where a fixed delay assumed it within the delay.
 */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await delay(10);
  }
  return true;
}

/** Polls `condition` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
async function waitUntil(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

const NOT_SUBSCRIBED = 'invalidation bus not subscribed within operationTimeoutMs';
const RESUBSCRIBED = 'invalidation bus reconnected';
const LOST_SENT_AGAIN = 'redis reachable again; lost invalidations sent again';

/**
 * For a cache with a short `operationTimeoutMs` whose test warms L1 before it makes Redis slow
 * or frozen: `ready()` waits at most that deadline for the invalidation bus's SUBSCRIBE, and one
 * that lands later drops L1 (the cache cannot know what it missed meanwhile). On a loaded
 * machine that drop came in the middle of the test and took the warmed value with it. Resolves
 * once the bus is subscribed; `logger` is the cache's recording logger, read after `ready()`.
 */
export async function busSubscribed(logger: RecordingLogger, timeoutMs = 20_000): Promise<void> {
  const said = (level: 'warn' | 'info', start: string) =>
    logger.messages(level).some((message) => message.startsWith(start));
  if (!said('warn', NOT_SUBSCRIBED)) return;
  await waitUntil('the bus subscribed', () => said('info', RESUBSCRIBED), timeoutMs);
}

/**
 * Sets `key` so that it stays in L1: a write whose L2 half ran past a short deadline on a loaded
 * machine is recorded as lost, and once Redis answers the cache announces it and drops its own
 * L1 copy (the value L2 may lack). Such a write is made again once that announcement went out.
 * `logger` is the cache's recording logger.
 */
export async function setKeptInL1(
  cache: Cache,
  logger: RecordingLogger,
  key: string,
  value: unknown,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const sentAgain = () => logger.messages('info').filter((message) => message === LOST_SENT_AGAIN).length;
  for (;;) {
    const [errors, announced] = [cache.stats().l2Errors, sentAgain()];
    await cache.set(key, value);
    if (cache.stats().l2Errors === errors) return;
    await waitUntil(
      `the lost write of ${key} announced`,
      () => sentAgain() > announced,
      deadline - Date.now(),
    );
  }
}

/** What one try of {@link findMemorySplit} saw: the write refused, run whole, or split. */
export type MemoryTry = 'refused' | 'ran' | 'split';

/**
 * Searches the `maxmemory` margin over the memory in use at which a large write is split: its
 * first command taken, the SADD behind it refused. `attempt(margin, index)` makes try `index`
 * with that margin and says what it saw; the search bisects between a margin that refuses the
 * write and one that takes it whole. The window is narrow (a few hundred bytes), and the memory
 * a write needs varies by more than that between tries on a loaded machine (how its bytes
 * arrive, buffers the server frees on its own clock): a bisection that closed on no split is
 * opened again around where it closed, up to `maxTries`. Resolves with whether a try split and
 * how many tries were made.
 */
export async function findMemorySplit(
  attempt: (margin: number, index: number) => Promise<MemoryTry>,
  maxTries = 300,
): Promise<{ split: boolean; tries: number }> {
  let [low, high] = [0, 1_000_000];
  for (let index = 0; index < maxTries; index += 1) {
    if (high - low <= 64) [low, high] = [Math.max(0, low - 4_096), high + 4_096];
    const margin = Math.round((low + high) / 2);
    const seen = await attempt(margin, index);
    if (seen === 'split') return { split: true, tries: index + 1 };
    if (seen === 'ran') high = margin;
    else low = margin;
  }
  return { split: false, tries: maxTries };
}
