import { awayFromWindowEdge, recordingLogger, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { privateRedisConnections } from './redis-fixture.js';
import { recordsOf } from './redis-stats.js';

// Private servers: SCRIPT FLUSH or FUNCTION FLUSH on the shared one would hit every other suite.
const { redis, skip } = await startPrivateRedisOrSkip();
// A server where FCALL does not exist, as on Redis < 7 (renamed away; FUNCTION stays).
const noFcall = await startPrivateRedisOrSkip(['--rename-command', 'FCALL', '']);
// A server that refuses FUNCTION LOAD with an error of its own (here: out of memory).
const full = await startPrivateRedisOrSkip(['--maxmemory', '1', '--maxmemory-policy', 'noeviction']);
// Fixed windows aligned to the minute (by Redis TIME on this host, or Date.now in memory: one clock):
// a test that expects a refusal or a count from the window its first call opened starts none
// within 3 s of a minute's end (an hour's or a day's end is one too).
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 3_000);
});

/** Calls and failed calls of FCALL, EVALSHA and EVAL since the last RESETSTAT. */
async function scriptStats(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  const stats: Record<string, number> = { fcall: 0, fcallFailed: 0, evalsha: 0, evalshaFailed: 0, eval: 0 };
  for (const match of info.matchAll(/^cmdstat_(fcall|evalsha|eval):calls=(\d+).*?failed_calls=(\d+)/gm)) {
    stats[match[1]!] = Number(match[2]);
    if (match[1] === 'evalsha') stats.evalshaFailed = Number(match[3]);
    if (match[1] === 'fcall') stats.fcallFailed = Number(match[3]);
  }
  return stats;
}

/**
 * A limiter of 2 per minute on `client`, once its start-up namespace record (a script call of its
 * own, which these tests do not count) has landed.
 */
async function limiterOn(client: Redis, functions: boolean) {
  const store = new RedisStore({ client, functions });
  const recorded = recordsOf(store);
  const limiter = createRateLimiter({
    store,
    limits: [{ limit: 2, windowMs: 60_000 }],
    // These tests are about loading the code, not the deadline: a slow machine must not cut it.
    deadlineMs: 5_000,
    localBlockCache: false,
  });
  await recorded();
  return { store, limiter };
}

describe.skipIf(skip !== undefined)('the check code is loaded again when the server lost it', () => {
  const { admin, client } = privateRedisConnections(redis);

  it('scripts: a check after SCRIPT FLUSH (a restart or failover) still counts, and the script is cached again', async () => {
    const { limiter } = await limiterOn(client, false);
    expect(await limiter.check('s')).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    expect(await limiter.check('s')).toMatchObject({ allowed: true, remaining: 0, source: 'store' });
    // One EVALSHA refused with NOSCRIPT, one EVAL that ran (and cached) the script.
    expect(await scriptStats(admin)).toMatchObject({ evalsha: 1, evalshaFailed: 1, eval: 1, fcall: 0 });
    await admin.config('RESETSTAT');
    expect(await limiter.check('s')).toMatchObject({ allowed: false, source: 'store' });
    expect(await scriptStats(admin)).toMatchObject({ evalsha: 1, evalshaFailed: 0, eval: 0, fcall: 0 });
    await limiter.close();
  });

  it('scripts: concurrent first checks (several calls in flight) share one EVAL: the others EVALSHA once it has run', async () => {
    const { limiter } = await limiterOn(client, false);
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    // 200 keys in one tick: calls of up to 32 keys each, all sent before the first NOSCRIPT returns.
    const keys = Array.from({ length: 200 }, (_, index) => `first-${index}`);
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    for (const result of results)
      expect(result).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    const stats = await scriptStats(admin);
    // Each call's EVALSHA was refused; one EVAL loaded (and ran) the script for all of them.
    expect(stats.eval).toBe(1);
    expect(stats.evalshaFailed).toBeGreaterThan(1);
    expect(stats.evalsha! - stats.evalshaFailed!).toBe(stats.evalshaFailed! - 1);
    await limiter.close();
  });

  it('scripts: a batch of keys and costs (the batch path, made lazily in a script) counts as a function does', async () => {
    const policy = { name: 'p', algorithm: 'fixed-window' as const, limit: 3, windowMs: 60_000 };
    const requests = [
      { key: 'batch-a', limits: [policy], costs: [1, 1] },
      { key: 'batch-b', limits: [policy], costs: [2, 2] },
    ];
    const asScript = new RedisStore({ client, functions: false, prefix: 'script:' });
    const asFunction = new RedisStore({ client, functions: true, prefix: 'function:' });
    const decide = async (store: RedisStore) =>
      (await store.consumeMany(requests, undefined)).map((outcomes) =>
        outcomes.map(({ decisions }) => [decisions[0]!.allowed, decisions[0]!.remaining]),
      );
    const expected = [
      [
        [true, 2],
        [true, 1],
      ],
      [
        [true, 1],
        [false, 1],
      ],
    ];
    expect(await decide(asScript)).toEqual(expected);
    expect(await decide(asFunction)).toEqual(expected);
    expect(asScript.usesFunctions).toBe(false);
  });

  it('functions: the library is loaded on first use and after FUNCTION FLUSH, each check one FCALL that counts once', async () => {
    await admin.call('FUNCTION', 'FLUSH');
    const { store, limiter } = await limiterOn(client, true);
    await admin.config('RESETSTAT');
    expect(await limiter.check('f')).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    // Refused (not found), loaded, run: two FCALLs, one of them failed, no script.
    expect(await scriptStats(admin)).toMatchObject({ fcall: 2, fcallFailed: 1, evalsha: 0, eval: 0 });
    const libraries = (await admin.call(
      'FUNCTION',
      'LIST',
      'LIBRARYNAME',
      checkProgram.libraryName,
    )) as unknown[];
    expect(libraries).toHaveLength(1);
    await admin.call('FUNCTION', 'FLUSH');
    await admin.config('RESETSTAT');
    expect(await limiter.check('f')).toMatchObject({ allowed: true, remaining: 0, source: 'store' });
    expect(await scriptStats(admin)).toMatchObject({ fcall: 2, fcallFailed: 1 });
    await admin.config('RESETSTAT');
    expect(await limiter.check('f')).toMatchObject({ allowed: false, source: 'store' });
    expect(await scriptStats(admin)).toMatchObject({ fcall: 1, fcallFailed: 0, evalsha: 0 });
    expect(store.usesFunctions).toBe(true);
    await limiter.close();
  });

  it('functions: concurrent first checks share one FUNCTION LOAD and each counts once', async () => {
    await admin.call('FUNCTION', 'FLUSH');
    const { limiter } = await limiterOn(client, true);
    await admin.config('RESETSTAT');
    const results = await Promise.all(Array.from({ length: 5 }, (_, index) => limiter.check(`c${index}`)));
    for (const result of results)
      expect(result).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    const info = await admin.info('commandstats');
    expect(info).toMatch(/cmdstat_function\|load:calls=1,/);
    await limiter.close();
  });
});

describe.skipIf(noFcall.skip !== undefined)('a server without Redis functions', () => {
  afterAll(async () => {
    await noFcall.redis?.stop();
  });

  it('checks switch to scripts at the first refusal, count once, and say so in the log', async () => {
    const client = new Redis(noFcall.redis!.url, { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    const admin = new Redis(noFcall.redis!.url);
    const logger = recordingLogger();
    const store = new RedisStore({ client, logger });
    const limiter = createRateLimiter({ store, limits: [{ limit: 2, windowMs: 60_000 }], deadlineMs: 5_000 });
    expect(store.usesFunctions).toBe(true);
    expect(await limiter.check('k')).toMatchObject({ allowed: true, remaining: 1, source: 'store' });
    expect(store.usesFunctions).toBe(false);
    expect(logger.messages('info')).toEqual([
      'RedisStore: Redis functions are not available; checks run as scripts (EVALSHA)',
    ]);
    expect(await limiter.check('k')).toMatchObject({ allowed: true, remaining: 0, source: 'store' });
    expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'store' });
    const stats = await scriptStats(admin);
    expect((stats.evalsha ?? 0) + (stats.eval ?? 0)).toBeGreaterThanOrEqual(3);
    await limiter.close();
    admin.disconnect();
    client.disconnect();
  });
});

describe.skipIf(full.skip !== undefined)('a server that cannot load the function library', () => {
  afterAll(async () => {
    await full.redis?.stop();
  });

  it('switches to scripts when the function is still missing after a load, and logs the load error', async () => {
    const client = new Redis(full.redis!.url, { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    const admin = new Redis(full.redis!.url);
    const logger = recordingLogger();
    const store = new RedisStore({ client, logger });
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 2, windowMs: 60_000 }],
      deadlineMs: 5_000,
      failMode: 'closed',
    });
    // Out of memory, the script's write fails too: the fail mode answers this first check.
    expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'fail-mode' });
    expect(store.usesFunctions).toBe(false);
    const logged = logger.entriesAt('info');
    expect(logged).toHaveLength(1);
    expect(String(logged[0]!.fields.reason)).toMatch(/^not found after FUNCTION LOAD \(OOM /);
    // Memory back: the scripts count.
    await admin.config('SET', 'maxmemory', '0');
    await vi.waitFor(async () => expect((await limiter.check('k')).source).toBe('store'), { timeout: 5_000 });
    expect(store.usesFunctions).toBe(false);
    await limiter.close();
    admin.disconnect();
    client.disconnect();
  });
});
