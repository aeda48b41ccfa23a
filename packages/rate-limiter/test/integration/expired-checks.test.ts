import { delay } from '@noa/core';
import { type PrivateRedisCluster, startPrivateRedisOrSkip, startRedisCluster } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type LimitPolicy,
  type RateLimiter,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore, recommendedClusterOptions, recommendedRedisOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { expiryMarginMs } from '../../src/stores/redis-clock.js';
import { defaultNamespace } from '../rule-namespace.js';

const { redis, skip } = await startPrivateRedisOrSkip();

const limit = 10_000;
// A fixed window of ~35 years (epoch-aligned: the next one starts in 2039), so no window starts
// mid-test and resets the counts.
const policy: LimitPolicy = { name: 'default', algorithm: 'fixed-window', limit, windowMs: 2 ** 40 };
// Generous, so that a healthy check is never cut even on 2 loaded cores (counts must be exact).
// Nothing depends on how many checks fit in a pause: Redis stays paused until the test lifts it.
const deadlineMs = 1_000;
/**
 * The deadline of the checks made while Redis is paused: all of them are cut whatever it is, so a
 * short one ends each paused round sooner (5 rounds took 5 s at `deadlineMs`).
 */
const pausedDeadlineMs = 150;
/** Rounds of checks cut by the deadline while Redis is paused. */
const pausedRounds = 5;
/** `CLIENT PAUSE` for far longer than any test: the test ends it with `CLIENT UNPAUSE`. */
const pauseForMs = 120_000;
let prefixes = 0;

/**
 * Pauses `server` until {@link unpause}. WRITE, not ALL: Redis holds every script call (none is
 * flagged `no-writes`) and so every command queued behind one on its connection, exactly as
 * ALL does, but still runs `CLIENT UNPAUSE`, which ALL would hold too (Redis 7.0).
 */
async function pause(server: Redis): Promise<void> {
  await server.client('PAUSE', pauseForMs, 'WRITE');
}

async function unpause(server: Redis): Promise<void> {
  await server.client('UNPAUSE');
}

/** A limiter on its own store and prefix; its breaker never opens, so every check reaches Redis. */
function limiterOn(client: Redis | Cluster, deadline = deadlineMs) {
  prefixes += 1;
  const prefix = `expired-${prefixes}:`;
  const store = new RedisStore({ client, prefix });
  const limiter = createRateLimiter({
    store,
    limits: [policy],
    failMode: 'open',
    deadlineMs: deadline,
    breaker: { consecutiveFailures: 1_000_000 },
    localBlockCache: false,
  });
  // The checks made while Redis is paused: the same store (whose warm-up taught it each server's
  // clock, for their expiries) and prefix, a short deadline. Same limits: it shares the quota.
  const pausedLimiter = createRateLimiter({
    store,
    limits: [policy],
    failMode: 'open',
    deadlineMs: Math.min(deadline, pausedDeadlineMs),
    breaker: { consecutiveFailures: 1_000_000 },
    localBlockCache: false,
  });
  // The limiter's store key of `key`: its default prefix and rule.
  const storeKey = (key: string) => `${defaultNamespace([policy])}${key}`;
  let slowestWarmMs = 0;
  return {
    limiter,
    pausedLimiter,
    prefix,
    /**
     * A zero-cost check of `key` with no deadline: loads the script and teaches the store the
     * clock of the server holding `key` (until its first reply a store sends no expiry).
     */
    warm: async (key: string) => {
      const started = performance.now();
      await store.consume(storeKey(key), [policy], [0], undefined);
      slowestWarmMs = Math.max(slowestWarmMs, performance.now() - started);
    },
    /**
     * How long after a check's deadline Redis may still run it: the store learnt each server's
     * clock offset from the warm-up replies as an upper bound, loose by at most one reply's round
     * trip, and stamps expiries that much (plus its 2 ms margin, and rounding) late.
     */
    expiryLagMs: () => Math.ceil(slowestWarmMs) + expiryMarginMs + 2,
    /** Points counted on `key`, read by a zero-cost check of a store with no deadline. */
    counted: async (key: string) => {
      const [outcome] = await new RedisStore({ client, prefix }).consume(
        storeKey(key),
        [policy],
        [0],
        undefined,
      );
      return limit - outcome!.decisions[0]!.remaining;
    },
  };
}

/** Rounds of concurrent checks, two per key (one script call per round on a standalone Redis). */
async function checkRounds(limiter: RateLimiter, keys: string[], rounds: number): Promise<RateLimitResult[]> {
  const results: RateLimitResult[] = [];
  for (let round = 0; round < rounds; round += 1)
    results.push(...(await Promise.all(keys.flatMap((key) => [key, key].map((k) => limiter.check(k))))));
  return results;
}

/**
 * {@link pausedRounds} rounds of checks while Redis is paused (each round ends at its deadline),
 * then waits until Redis's clock is surely past the last round's expiry (`expiryLagMs` after the
 * round ended, which is at or after its give-up time), so that every queued call is expired
 * when Redis runs it, however late this process got to each step.
 */
async function checkWhilePaused(
  limiter: RateLimiter,
  keys: string[],
  expiryLagMs: number,
): Promise<RateLimitResult[]> {
  const results = await checkRounds(limiter, keys, pausedRounds);
  await delay(expiryLagMs);
  return results;
}

describe.skipIf(skip !== undefined)('checks that reach Redis after their deadline', () => {
  const clients: Redis[] = [];

  async function connect(): Promise<Redis> {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, lazyConnect: true });
    client.on('error', () => {});
    clients.push(client);
    await client.connect();
    return client;
  }

  // A failed test must not leave Redis paused for the next one.
  afterEach(async () => {
    await Promise.all(clients.map((client) => unpause(client).catch(() => {})));
  });

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('a check answered by the fail mode while Redis was paused is not counted once Redis runs it', async () => {
    const client = await connect();
    const { limiter, pausedLimiter, warm, counted, expiryLagMs } = limiterOn(client);
    const keys = ['user-1', 'user-2', 'user-3'];
    for (const key of keys) await warm(key);

    const admin = await connect();
    await pause(admin);
    // Script calls of 3 keys × 2 requests each, all cut by the deadline.
    const during = await checkWhilePaused(pausedLimiter, keys, expiryLagMs());
    expect(during).toHaveLength(pausedRounds * 6);
    expect(during.every((result) => result.source === 'fail-mode' && result.allowed)).toBe(true);
    await unpause(admin);

    // Commands on one connection run in order: once this PING answers, every queued script has run.
    await client.ping();
    for (const key of keys) expect(await counted(key)).toBe(0);

    // Back to normal: every check counts again, exactly once.
    for (let index = 0; index < 5; index += 1) expect((await limiter.check('user-1')).source).toBe('store');
    const burst = await checkRounds(limiter, keys, 3);
    expect(burst.every((result) => result.source === 'store')).toBe(true);
    expect(await counted('user-1')).toBe(5 + 6);
    expect(await counted('user-2')).toBe(6);
    await pausedLimiter.close();
    await limiter.close();
  });

  it('a check that Redis runs late but within its deadline counts and is answered by the store', async () => {
    const client = await connect();
    const { limiter, pausedLimiter, warm, counted } = limiterOn(client, 10_000);
    await pausedLimiter.close();
    await warm('slow');

    const admin = await connect();
    await pause(admin);
    let unpaused = false;
    const checks = Promise.all(
      Array.from({ length: 10 }, () => limiter.check('slow').then((result) => ({ result, unpaused }))),
    );
    await delay(300);
    unpaused = true;
    await unpause(admin);
    const answers = await checks;
    // Redis answered none of them before the pause ended: each one reached it late.
    expect(answers.every((answer) => answer.unpaused)).toBe(true);
    const late = answers.map((answer) => answer.result);
    expect(late.every((result) => result.source === 'store' && result.allowed)).toBe(true);
    expect(late.map((result) => result.remaining!).sort((a, b) => b - a)).toEqual(
      Array.from({ length: 10 }, (_, index) => limit - 1 - index),
    );
    expect(await counted('slow')).toBe(10);
    await limiter.close();
  });
});

describe.skipIf(skip !== undefined)('checks that reach a Redis Cluster master after their deadline', () => {
  let cluster: PrivateRedisCluster;
  let client: Cluster;
  const admins: Redis[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    client = new Cluster(cluster.nodes, recommendedClusterOptions);
    for (const node of cluster.nodes) admins.push(new Redis(node.port, node.host));
  });
  afterEach(async () => {
    await Promise.all(admins.map((admin) => unpause(admin).catch(() => {})));
  });
  afterAll(async () => {
    client?.disconnect();
    for (const admin of admins) admin.disconnect();
    await cluster?.stop();
  });

  it('hashes keys to the slots the servers use', async () => {
    const names = ['user:1', 'noa:rl:{rl:default:user:1}', 'a{b}c', 'a{}b{c}', '{{x}}', 'ключ{é}', '}{y}'];
    for (const name of names) expect(clusterSlot(name)).toBe(await admins[0]!.cluster('KEYSLOT', name));
  });

  it('skips the queued checks on every master (each with its own clock offset)', async () => {
    const { limiter, pausedLimiter, prefix, warm, counted, expiryLagMs } = limiterOn(client);
    // Keys spread over the three masters.
    const keys = Array.from({ length: 9 }, (_, index) => `user-${index}`);
    for (const key of keys) await warm(key);
    const masters = new Set(
      keys.map((key) => client.slots[clusterSlot(`${prefix}{${defaultNamespace([policy])}${key}}`)]?.[0]),
    );
    expect(masters.size).toBe(3);

    await Promise.all(admins.map(pause));
    const during = await checkWhilePaused(pausedLimiter, keys, expiryLagMs());
    expect(during).toHaveLength(pausedRounds * 18);
    expect(during.every((result) => result.source === 'fail-mode' && result.allowed)).toBe(true);
    await Promise.all(admins.map(unpause));

    // Each master runs its queue in order: a PING on every connection the client uses waits for it.
    await Promise.all(client.nodes('master').map((node) => node.ping()));
    for (const key of keys) expect(await counted(key)).toBe(0);

    const after = await checkRounds(limiter, keys, 2);
    expect(after.every((result) => result.source === 'store')).toBe(true);
    for (const key of keys) expect(await counted(key)).toBe(4);
    await pausedLimiter.close();
    await limiter.close();
  });
});
