import { delay, withDeadline } from '@noa/core';
import { generousDeadlineMs, recordingLogger, startPrivateRedis } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { resyncWatcher } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';

const hasRedisServer = redisServerInstalled('the bus-down tests');

/** How long `work` took (ms), its outcome ignored; a call still running after 15 s fails the test. */
async function duration(label: string, work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await withDeadline(
    work().catch(() => undefined),
    15_000,
    label,
  );
  return performance.now() - started;
}

/** Resolves once `check` holds (polled), or fails after `ms`. */
async function eventually(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(20);
  }
  expect(await check(), 'condition not met in time').toBe(true);
}

/**
 * What a cache call can wait on the invalidation bus for while Redis does not answer: the
 * PUBLISH after a write or an invalidation, the bus's first SUBSCRIBE (`ready()`), `close()`.
 * Each returns within the call's deadline, and the bus still resyncs once Redis answers.
 */
// Concurrent: each test has a redis-server of its own, and spends its time waiting on it.
describe.skipIf(!hasRedisServer).concurrent('invalidation bus while Redis is down', () => {
  /** Long enough that a second deadline stands out on 2 noisy cores. */
  const OPERATION_TIMEOUT_MS = 2_000;
  const BOUND_MS = OPERATION_TIMEOUT_MS * 1.5;

  it('Redis frozen (SIGSTOP): a write or invalidation takes one deadline, not a second one for its message', async () => {
    const server = await startPrivateRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    // The breaker stays closed: every call is attempted and meets the frozen server.
    const options: CacheOptions = {
      redis,
      prefix: 'frozen:',
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      breaker: { consecutiveFailures: 1_000 },
    };
    const cache = new Cache(options);
    const other = new Cache(options);
    const received: string[] = [];
    other.onInvalidation((message) => received.push(message.t));
    try {
      await Promise.all([cache.ready(), other.ready()]);
      await cache.set('k', 1, { tags: ['t'] });
      server.freeze();
      const calls: [string, () => Promise<unknown>][] = [
        ['set', () => cache.set('k', 2)],
        ['delete', () => cache.delete('k')],
        ['deleteByTag', () => cache.deleteByTag('t')],
        ['expire', () => cache.expire('k')],
        ['expireByTag', () => cache.expireByTag('t')],
        ['clear', () => cache.clear()],
      ];
      // Together: each is timed from its own start, and one that waited a second deadline for
      // its message would still take two (the server stays frozen until all have returned).
      const durations = await Promise.all(calls.map(([label, call]) => duration(label, call)));
      for (const [index, ms] of durations.entries())
        expect(ms, `${calls[index]![0]} took ${ms.toFixed(0)} ms`).toBeLessThan(BOUND_MS);
      // The invalidations were recorded as lost: once Redis answers, they are sent again.
      server.resume();
      await eventually(() => received.includes('del') && received.includes('tag'));
    } finally {
      server.resume();
      await other.close();
      await cache.close();
      redis.disconnect();
      await server.stop();
    }
  }, 90_000);

  it('Redis frozen (SIGSTOP): a new cache ready() and close() take one deadline at most; the bus subscribes once Redis answers', async () => {
    const server = await startPrivateRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    const options: CacheOptions = {
      redis,
      prefix: 'frozen:',
      operationTimeoutMs: OPERATION_TIMEOUT_MS,
      breaker: { consecutiveFailures: 1_000 },
    };
    const cache = new Cache(options);
    const { logger, resynced } = resyncWatcher();
    let fresh: Cache | undefined;
    try {
      await cache.ready();
      server.freeze();
      // A cache started now: its bus connection connects (the kernel accepts) and hangs.
      fresh = new Cache({ ...options, logger });
      const readyMs = await duration('ready', () => fresh!.ready());
      expect(readyMs, `ready() took ${readyMs.toFixed(0)} ms`).toBeLessThan(BOUND_MS);
      // Once Redis answers, its bus subscribes, drops its L1 (it may have missed invalidations)
      // and carries messages.
      server.resume();
      await eventually(resynced);
      expect(await fresh.get('later')).toBeUndefined();
      await cache.set('later', 'v1');
      await fresh.get('later');
      await cache.set('later', 'v2');
      await eventually(() => fresh!.getLocal('later') !== 'v1');
      expect(await fresh.get('later')).toBe('v2');
      server.freeze();
      const closeMs = await duration('close', () => Promise.all([cache.close(), fresh!.close()]));
      expect(closeMs, `close() took ${closeMs.toFixed(0)} ms`).toBeLessThan(BOUND_MS);
    } finally {
      server.resume();
      await cache.close();
      await fresh?.close();
      redis.disconnect();
      await server.stop();
    }
  }, 90_000);

  it('Redis stopped: a new cache ready() returns once its bus connection failed, and the bus subscribes once Redis is back', async () => {
    const server = await startPrivateRedis();
    // ioredis keeps a command queued for as long as the outage lasts (maxRetriesPerRequest: null).
    const redis = new Redis(server.url, { retryStrategy: () => 100, maxRetriesPerRequest: null });
    redis.on('error', () => {});
    const peer = new Redis(server.url, { lazyConnect: true });
    const { logger, resynced } = resyncWatcher();
    let fresh: Cache | undefined;
    let writer: Cache | undefined;
    try {
      await server.kill();
      fresh = new Cache({ redis, prefix: 'stopped:', operationTimeoutMs: 10_000, logger });
      const readyMs = await duration('ready', () => fresh!.ready());
      expect(readyMs, `ready() took ${readyMs.toFixed(0)} ms`).toBeLessThan(5_000);
      const closeMs = await duration('set', () => fresh!.set('k', 'local'));
      expect(closeMs).toBeLessThan(5_000);
      await server.restart();
      await eventually(resynced);
      // The bus's connection is back; the cache's own may still wait for its next attempt (a
      // call fails at once while an attempt has failed since the client was last ready: see
      // RedisGuard.sendOnlyWhenConnected), and a get then reads nothing (seen under load).
      await eventually(() => redis.status === 'ready');
      // Not the cache under test: a deadline it would only miss on a stalled machine (its set
      // then lost, fresh read nothing).
      writer = new Cache({ redis: peer, prefix: 'stopped:', operationTimeoutMs: generousDeadlineMs });
      await writer.ready();
      await writer.set('k', 'v1');
      expect(await fresh.get('k')).toBe('v1');
      await writer.set('k', 'v2');
      await eventually(() => fresh!.getLocal('k') !== 'v1');
      expect(await fresh.get('k')).toBe('v2');
    } finally {
      await fresh?.close();
      await writer?.close();
      redis.disconnect();
      peer.disconnect();
      await server.stop();
    }
  }, 90_000);

  it('two instances, Redis stopped and restarted on the same port: neither keeps serving what its bus missed', async () => {
    const server = await startPrivateRedis();
    // The writer reconnects at once, the reader 1.5 s later: a write lands in between.
    const writerClient = new Redis(server.url, { retryStrategy: () => 50, maxRetriesPerRequest: 1 });
    const readerClient = new Redis(server.url, { retryStrategy: () => 1_500, maxRetriesPerRequest: 1 });
    const admin = new Redis(server.url, { retryStrategy: () => 50, maxRetriesPerRequest: 1 });
    for (const client of [writerClient, readerClient, admin]) client.on('error', () => {});
    const writer = new Cache({ redis: writerClient, prefix: 'restart:' });
    const reader = new Cache({ redis: readerClient, prefix: 'restart:' });
    const subscribers = async () =>
      Number(((await admin.pubsub('NUMSUB', 'restart:__bus')) as [string, number])[1]);
    try {
      await Promise.all([writer.ready(), reader.ready()]);
      await writer.set('k', 'v1');
      await writer.set('lost', 'v1');
      expect(await reader.get('k')).toBe('v1');
      expect(await reader.get('lost')).toBe('v1');
      await server.kill();
      // Lost: L2 is out of reach, only the writer's L1 takes it.
      await writer.set('lost', 'written while down');
      expect(writer.getLocal('lost')).toBe('written while down');
      // Back empty (no persistence), on the same port; the reader's bus is not subscribed yet.
      await server.restart();
      await eventually(async () => (await writerClient.ping().catch(() => '')) === 'PONG');
      await writer.set('k', 'v2');
      expect(await admin.get('restart:v:k')).not.toBeNull();
      expect(await subscribers(), 'the reader subscribed before the write: nothing was missed').toBe(1);
      // The reader missed the message of v2; once subscribed it drops its L1 and reads L2.
      await eventually(async () => (await subscribers()) === 2);
      await eventually(async () => (await reader.get('k')) === 'v2');
      // The lost write is lost everywhere: neither instance serves it, nor the value it replaced.
      await eventually(async () => (await writer.get('lost')) === undefined);
      expect(await reader.get('lost')).toBeUndefined();
    } finally {
      await writer.close();
      await reader.close();
      for (const client of [writerClient, readerClient, admin]) client.disconnect();
      await server.stop();
    }
  }, 60_000);

  it('a SUBSCRIBE the server refuses (an ACL without it) ends ready() at once and leaves no resync pending', async () => {
    const server = await startPrivateRedis();
    const admin = new Redis(server.url);
    await admin.acl('SETUSER', 'nosub', 'on', '>secret', '~*', '&*', '+@all', '-subscribe');
    const url = new URL(server.url);
    const redis = new Redis({
      host: url.hostname,
      port: Number(url.port),
      username: 'nosub',
      password: 'secret',
    });
    redis.on('error', () => {});
    const logger = recordingLogger();
    const cache = new Cache({ redis, prefix: 'acl:', operationTimeoutMs: 2_000, logger });
    try {
      const readyMs = await duration('ready', () => cache.ready());
      expect(readyMs, `ready() took ${readyMs.toFixed(0)} ms`).toBeLessThan(1_000);
      expect(
        logger.messages('warn').some((message) => message.startsWith('invalidation bus could not subscribe')),
      ).toBe(true);
      // Past the start deadline: the bus is not taken for one waiting to resubscribe (every
      // factory run would be suspect for good, one more L2 read each).
      await delay(2_500);
      expect(logger.messages('warn').filter((message) => message.includes('not subscribed within'))).toEqual(
        [],
      );
      expect(await cache.getOrSet('k', () => 'v')).toBe('v');
      expect(cache.getLocal('k')).toBe('v');
    } finally {
      await cache.close();
      redis.disconnect();
      admin.disconnect();
      await server.stop();
    }
  }, 30_000);
});
