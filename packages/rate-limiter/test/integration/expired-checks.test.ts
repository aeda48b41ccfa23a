import { type PrivateRedisCluster, startPrivateRedisOrSkip, startRedisCluster } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRateLimiter,
  type LimitPolicy,
  type RateLimiter,
  type RateLimitResult,
  RedisStore,
  recommendedClusterOptions,
  recommendedRedisOptions,
} from '../../src/index.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';

const { redis, skip } = await startPrivateRedisOrSkip();

const limit = 10_000;
// A fixed window of ~35 years (epoch-aligned: the next one starts in 2039), so no window starts
// mid-test and resets the counts.
const policy: LimitPolicy = { name: 'default', algorithm: 'fixed-window', limit, windowMs: 2 ** 40 };
// Long enough that a healthy check on 2 noisy cores is never cut (counts must be exact), short
// enough that many rounds of checks are cut during one pause.
const deadlineMs = 100;
const pauseMs = 2_000;
let prefixes = 0;

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
  // The limiter's store key of `key`: its default prefix and rule.
  const storeKey = (key: string) => `rl:default:${key}`;
  return {
    limiter,
    prefix,
    /**
     * A zero-cost check of `key` with no deadline: loads the script and teaches the store the
     * clock of the server holding `key` (until its first reply a store sends no expiry).
     */
    warm: (key: string) => store.consume(storeKey(key), [policy], [0], undefined),
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

/** Rounds of checks for as long as the pause surely lasts (each round is cut by the deadline). */
async function checkWhilePaused(limiter: RateLimiter, keys: string[]): Promise<RateLimitResult[]> {
  const pausedAt = performance.now();
  const results: RateLimitResult[] = [];
  while (performance.now() - pausedAt < pauseMs - 4 * deadlineMs)
    results.push(...(await checkRounds(limiter, keys, 1)));
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

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it('a check answered by the fail mode while Redis was paused is not counted once Redis runs it', async () => {
    const client = await connect();
    const { limiter, warm, counted } = limiterOn(client);
    const keys = ['user-1', 'user-2', 'user-3'];
    for (const key of keys) await warm(key);

    await redis!.pause(pauseMs);
    // Script calls of 3 keys × 2 requests each, all cut by the deadline.
    const during = await checkWhilePaused(limiter, keys);
    expect(during.length).toBeGreaterThanOrEqual(5 * 6);
    expect(during.every((result) => result.source === 'fallback' && result.allowed)).toBe(true);

    // Commands on one connection run in order: once this PING answers, every queued script has run.
    await client.ping();
    for (const key of keys) expect(await counted(key)).toBe(0);

    // Back to normal: every check counts again, exactly once.
    for (let index = 0; index < 5; index += 1) expect((await limiter.check('user-1')).source).toBe('store');
    const burst = await checkRounds(limiter, keys, 3);
    expect(burst.every((result) => result.source === 'store')).toBe(true);
    expect(await counted('user-1')).toBe(5 + 6);
    expect(await counted('user-2')).toBe(6);
    await limiter.close();
  });

  it('a check that Redis runs late but within its deadline counts and is answered by the store', async () => {
    const client = await connect();
    const { limiter, warm, counted } = limiterOn(client, 10_000);
    await warm('slow');

    await redis!.pause(500);
    const late = await Promise.all(Array.from({ length: 10 }, () => limiter.check('slow')));
    expect(late.every((result) => result.source === 'store' && result.allowed)).toBe(true);
    expect(late.map((result) => result.remaining).sort((a, b) => b - a)).toEqual(
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
    const { limiter, prefix, warm, counted } = limiterOn(client);
    // Keys spread over the three masters.
    const keys = Array.from({ length: 9 }, (_, index) => `user-${index}`);
    for (const key of keys) await warm(key);
    const masters = new Set(
      keys.map((key) => client.slots[clusterSlot(`${prefix}{rl:default:${key}}`)]?.[0]),
    );
    expect(masters.size).toBe(3);

    await Promise.all(admins.map((admin) => admin.client('PAUSE', pauseMs, 'ALL')));
    const during = await checkWhilePaused(limiter, keys);
    expect(during.length).toBeGreaterThanOrEqual(5 * 18);
    expect(during.every((result) => result.source === 'fallback' && result.allowed)).toBe(true);

    // Each master runs its queue in order: a PING on every connection the client uses waits for it.
    await Promise.all(client.nodes('master').map((node) => node.ping()));
    for (const key of keys) expect(await counted(key)).toBe(0);

    const after = await checkRounds(limiter, keys, 2);
    expect(after.every((result) => result.source === 'store')).toBe(true);
    for (const key of keys) expect(await counted(key)).toBe(4);
    await limiter.close();
  });
});
