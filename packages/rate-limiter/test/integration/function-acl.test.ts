import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../../src/policy.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { RedisStore, recommendedRedisOptions } from '../../src/stores/redis-store.js';
import { privateRedisConnections } from './redis-fixture.js';
import { commandCalls } from './redis-stats.js';

// Redis ACL users that may run only part of what the store uses: the store runs checks with
// what the user is allowed, and counts each one once. A private server: ACL users and
// FUNCTION FLUSH must not reach other suites.

const { redis, skip } = await startPrivateRedisOrSkip();

const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 3, windowMs: 2 ** 40 }];
// One check per key allowed: a key counted twice in one round is denied in it.
const onePerKey: LimitPolicy[] = [{ name: 'o', algorithm: 'fixed-window', limit: 1, windowMs: 2 ** 40 }];
const keys = Array.from({ length: 200 }, (_, index) => `k${index}`);

describe.skipIf(skip !== undefined)('RedisStore under ACL users', () => {
  const { admin } = privateRedisConnections(redis);
  const clients: Redis[] = [];
  beforeAll(async () => {
    // Everything a check and its script fallback use, less what each user is denied.
    const base = ['on', 'nopass', '~*', '+@all'];
    await admin.call('ACL', 'SETUSER', 'no-fcall', ...base, '-fcall');
    await admin.call('ACL', 'SETUSER', 'no-load', ...base, '-function|load', '-function|flush');
    await admin.call('ACL', 'SETUSER', 'no-function', ...base, '-fcall', '-function');
    await admin.call('ACL', 'SETUSER', 'fcall-later', ...base, '-fcall');
    await admin.call('ACL', 'SETUSER', 'fcall-later-2', ...base, '-fcall');
  });
  afterAll(() => {
    for (const client of clients) client.disconnect();
  });

  async function connectAs(username: string): Promise<Redis> {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, username, lazyConnect: true });
    clients.push(client);
    await client.connect();
    return client;
  }
  /**
   * FCALLs the server took (`calls`) and refused (`rejected_calls`: an ACL's NOPERM), which
   * `commandCalls` leaves out.
   */
  async function fcalls(): Promise<{ calls: number; rejected: number }> {
    const info = await admin.info('commandstats');
    const line = /^cmdstat_fcall:calls=(\d+).*rejected_calls=(\d+)/m.exec(info);
    return { calls: Number(line?.[1] ?? 0), rejected: Number(line?.[2] ?? 0) };
  }
  /** One check of each key, all in flight together (many calls at once); whether each was allowed. */
  async function checksInFlight(store: RedisStore, keys: string[]): Promise<boolean[]> {
    const outcomes = await Promise.all(keys.map((key) => store.consume(key, onePerKey, [1], undefined)));
    return outcomes.map((outcome) => outcome[0]!.decisions[0]!.allowed);
  }
  async function threeChecks(store: RedisStore, key: string): Promise<boolean[]> {
    const allowed: boolean[] = [];
    for (let index = 0; index < 4; index += 1)
      allowed.push((await store.consume(key, limits, [1], undefined))[0]!.decisions[0]!.allowed);
    return allowed;
  }

  it('a user allowed EVALSHA but not FCALL: checks run as scripts and count once', async () => {
    const store = new RedisStore({ client: await connectAs('no-fcall'), prefix: 'no-fcall:' });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
  });

  it('a user allowed FCALL but not FUNCTION LOAD uses the library an admin loaded', async () => {
    await admin.call('FUNCTION', 'LOAD', 'REPLACE', checkProgram.library);
    await admin.config('RESETSTAT');
    const store = new RedisStore({ client: await connectAs('no-load'), prefix: 'no-load:' });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(true);
    const calls = await commandCalls(admin);
    expect(calls.fcall).toBe(4);
    expect(calls.evalsha ?? 0).toBe(0);
  });

  it('a user allowed FCALL but not FUNCTION LOAD, the library not loaded: scripts, each check counted once', async () => {
    await admin.call('FUNCTION', 'FLUSH');
    const store = new RedisStore({ client: await connectAs('no-load'), prefix: 'no-load-2:' });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
  });

  it('a user denied every function command: scripts, each check counted once', async () => {
    const store = new RedisStore({ client: await connectAs('no-function'), prefix: 'no-function:' });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
  });

  it('a user granted FCALL later gets functions back after functionsRetryMs, still counting once', async () => {
    await admin.call('FUNCTION', 'LOAD', 'REPLACE', checkProgram.library);
    const store = new RedisStore({
      client: await connectAs('fcall-later'),
      prefix: 'fcall-later:',
      functionsRetryMs: 50,
    });
    const check = async () => (await store.consume('k', limits, [1], undefined))[0]!.decisions[0]!.allowed;
    expect(await check()).toBe(true);
    expect(store.usesFunctions).toBe(false);
    await admin.call('ACL', 'SETUSER', 'fcall-later', '+fcall');
    await new Promise((resolve) => setTimeout(resolve, 60));
    await admin.config('RESETSTAT');
    expect([await check(), await check(), await check()]).toEqual([true, true, false]);
    expect(store.usesFunctions).toBe(true);
    const calls = await commandCalls(admin);
    expect(calls.fcall).toBe(3);
    expect(calls.evalsha ?? 0).toBe(0);
  });

  it('a user still denied FCALL at the retry: that check runs as a script, counted once', async () => {
    const store = new RedisStore({
      client: await connectAs('no-function'),
      prefix: 'no-function-retry:',
      functionsRetryMs: 50,
    });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(store.usesFunctions).toBe(false); // the retry is due: the next check tries FCALL
    // The first of these is refused FCALL and sent again as a script: each counted once.
    expect(await threeChecks(store, 'k2')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
  });

  it('a retry on a server that still refuses sends one FCALL, however many calls are in flight', async () => {
    const store = new RedisStore({
      client: await connectAs('no-fcall'),
      prefix: 'no-fcall-probe:',
      functionsRetryMs: 50,
    });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    await new Promise((resolve) => setTimeout(resolve, 60));
    await admin.config('RESETSTAT');
    // Each key allowed once in this round (none counted twice), denied in the next (counted).
    expect(await checksInFlight(store, keys)).toEqual(keys.map(() => true));
    const calls = await commandCalls(admin);
    expect(await fcalls()).toEqual({ calls: 0, rejected: 1 });
    expect(calls.evalsha).toBeGreaterThan(2); // several calls were in flight, the refused one resent
    expect(store.usesFunctions).toBe(false);
    expect(await checksInFlight(store, keys)).toEqual(keys.map(() => false));
  });

  it('a successful probe brings functions back for every call', async () => {
    await admin.call('FUNCTION', 'LOAD', 'REPLACE', checkProgram.library);
    const store = new RedisStore({
      client: await connectAs('fcall-later-2'),
      prefix: 'fcall-later-2:',
      functionsRetryMs: 50,
    });
    expect(await threeChecks(store, 'k')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
    await admin.call('ACL', 'SETUSER', 'fcall-later-2', '+fcall');
    await new Promise((resolve) => setTimeout(resolve, 60));
    await admin.config('RESETSTAT');
    // The probe is one of this round's calls; the others still run as scripts.
    expect(await checksInFlight(store, keys)).toEqual(keys.map(() => true));
    const probed = await commandCalls(admin);
    expect(probed.fcall).toBe(1);
    expect(probed.evalsha).toBeGreaterThan(1);
    expect(store.usesFunctions).toBe(true);
    await admin.config('RESETSTAT');
    expect(await checksInFlight(store, keys)).toEqual(keys.map(() => false));
    const after = await commandCalls(admin);
    expect(after.fcall).toBeGreaterThan(1);
    expect(after.evalsha ?? 0).toBe(0);
  });
});
