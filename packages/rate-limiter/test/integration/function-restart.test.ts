import { once } from 'node:events';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../../src/policy.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { RedisStore, recommendedRedisOptions } from '../../src/stores/redis-store.js';

// A standalone server that loses the function library (a restart without persistence, FUNCTION
// FLUSH or DELETE under load) or keeps it (a restart from its AOF): each check counts once,
// and the library is loaded only when it is missing. Private servers: they are killed.

const volatile = await startPrivateRedisOrSkip();
const persistent = await startPrivateRedisOrSkip(['--appendonly', 'yes']);

const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 1_000_000, windowMs: 2 ** 40 }];

/** Calls per command (`function|load`, `fcall`, `evalsha`…) since the server's last RESETSTAT. */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const info = await admin.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  return calls;
}

async function counted(store: RedisStore, key: string): Promise<number> {
  const decision = (await store.consume(key, limits, [0], undefined))[0]!.decisions[0]!;
  return decision.limit - decision.remaining;
}

const clients: Redis[] = [];
function connect(url: string): Redis {
  const client = new Redis(url, recommendedRedisOptions);
  client.on('error', () => {});
  clients.push(client);
  return client;
}
afterAll(async () => {
  for (const client of clients) client.disconnect();
  await volatile.redis?.stop();
  await persistent.redis?.stop();
});

/** Kills and restarts `server`, and waits until `clients` are connected again. */
async function restart(server: { kill(): Promise<void>; restart(): Promise<void> }, ...again: Redis[]) {
  await server.kill();
  await server.restart();
  await Promise.all(again.map((client) => (client.status === 'ready' ? undefined : once(client, 'ready'))));
}

describe.skipIf(volatile.skip !== undefined)('a server without persistence', () => {
  it('after a restart the library is loaded again, once, and checks count once', async () => {
    const client = connect(volatile.redis!.url);
    const admin = connect(volatile.redis!.url);
    const store = new RedisStore({ client });
    await store.consume('k', limits, [1, 1], undefined);
    await restart(volatile.redis!, client, admin);
    await store.consume('k', limits, [1], undefined);
    expect(await counted(store, 'k')).toBe(1);
    expect(await commandCalls(admin)).toMatchObject({ 'function|load': 1, fcall: 3 });
    expect(store.usesFunctions).toBe(true);
  });

  it('FUNCTION FLUSH and FUNCTION DELETE with many checks in flight: each counts once, functions stay on', async () => {
    const client = connect(volatile.redis!.url);
    const admin = connect(volatile.redis!.url);
    const store = new RedisStore({ client, prefix: 'flush:' });
    await store.consume('warm-up', limits, [1], undefined);
    const checks: Promise<unknown>[] = [];
    for (let round = 0; round < 4; round += 1) {
      for (let index = 0; index < 50; index += 1)
        checks.push(store.consume(`k${index % 5}`, limits, [1], undefined));
      // Sent on another connection while the client's checks are queued or running.
      if (round === 1) await admin.call('FUNCTION', 'FLUSH');
      if (round === 2) await admin.call('FUNCTION', 'DELETE', checkProgram.libraryName);
    }
    await Promise.all(checks);
    for (let index = 0; index < 5; index += 1) expect(await counted(store, `k${index}`)).toBe(40);
    expect(store.usesFunctions).toBe(true);
  });
});

describe.skipIf(persistent.skip !== undefined)('a server with an append-only file', () => {
  it('after a restart the library is still there: no load, checks count on', async () => {
    const client = connect(persistent.redis!.url);
    const admin = connect(persistent.redis!.url);
    const store = new RedisStore({ client });
    await store.consume('k', limits, [1, 1], undefined);
    await restart(persistent.redis!, client, admin);
    await store.consume('k', limits, [1], undefined);
    expect(await counted(store, 'k')).toBe(3);
    const calls = await commandCalls(admin);
    expect(calls['function|load']).toBeUndefined();
    expect(calls.fcall).toBe(2);
    expect(store.usesFunctions).toBe(true);
  });
});
