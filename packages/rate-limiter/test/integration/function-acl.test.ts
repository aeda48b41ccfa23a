import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../../src/policy.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { RedisStore, recommendedRedisOptions } from '../../src/stores/redis-store.js';
import { commandCalls } from './redis-stats.js';

// Redis ACL users that may run only part of what the store uses: the store runs checks with
// what the user is allowed, and counts each one once. A private server: ACL users and
// FUNCTION FLUSH must not reach other suites.

const { redis, skip } = await startPrivateRedisOrSkip();

const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 3, windowMs: 2 ** 40 }];

describe.skipIf(skip !== undefined)('RedisStore under ACL users', () => {
  let admin: Redis;
  const clients: Redis[] = [];
  beforeAll(async () => {
    admin = new Redis(redis!.url);
    // Everything a check and its script fallback use, less what each user is denied.
    const base = ['on', 'nopass', '~*', '+@all'];
    await admin.call('ACL', 'SETUSER', 'no-fcall', ...base, '-fcall');
    await admin.call('ACL', 'SETUSER', 'no-load', ...base, '-function|load', '-function|flush');
    await admin.call('ACL', 'SETUSER', 'no-function', ...base, '-fcall', '-function');
    await admin.call('ACL', 'SETUSER', 'fcall-later', ...base, '-fcall');
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await redis?.stop();
  });

  async function connectAs(username: string): Promise<Redis> {
    const client = new Redis(redis!.url, { ...recommendedRedisOptions, username, lazyConnect: true });
    clients.push(client);
    await client.connect();
    return client;
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
    expect(store.usesFunctions).toBe(true); // the retry is due: the next check tries FCALL
    // The first of these is refused FCALL and sent again as a script: each counted once.
    expect(await threeChecks(store, 'k2')).toEqual([true, true, true, false]);
    expect(store.usesFunctions).toBe(false);
  });
});
