import { once } from 'node:events';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { LimitPolicy } from '../../src/policy.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { RedisStore, recommendedRedisOptions } from '../../src/stores/redis-store.js';
import { commandCalls } from './redis-stats.js';

// A standalone server that loses the function library (a restart without persistence, FUNCTION
// FLUSH or DELETE under load) or keeps it (a restart from its AOF): each check counts once,
// and the library is loaded only when it is missing. Private servers: they are killed.

const volatile = await startPrivateRedisOrSkip();
const persistent = await startPrivateRedisOrSkip(['--appendonly', 'yes', '--appendfsync', 'always']);

const limits: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 1_000_000, windowMs: 2 ** 40 }];

/** Calls per command (`function|load`, `fcall`, `evalsha`…) since the server's last RESETSTAT. */

async function counted(store: RedisStore, key: string): Promise<number> {
  const decision = (await store.consume(key, limits, [0], undefined))[0]!.decisions[0]!;
  return decision.limit - decision.remaining;
}

const clients: Redis[] = [];
/** A client as the store wants it, or (`admin`) one that queues commands until it connects. */
function connect(url: string, admin = false): Redis {
  const client = new Redis(url, admin ? {} : recommendedRedisOptions);
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
    const admin = connect(volatile.redis!.url, true);
    const store = new RedisStore({ client });
    await store.consume('k', limits, [1, 1], undefined);
    await restart(volatile.redis!, client, admin);
    await store.consume('k', limits, [1], undefined);
    expect(await counted(store, 'k')).toBe(1);
    expect(await commandCalls(admin)).toMatchObject({ 'function|load': 1, fcall: 3 });
    expect(store.usesFunctions).toBe(true);
  });

  it('FUNCTION FLUSH with many checks in flight, then FUNCTION DELETE: each check counts once, functions stay on', async () => {
    const client = connect(volatile.redis!.url);
    const admin = connect(volatile.redis!.url, true);
    const store = new RedisStore({ client, prefix: 'flush:' });
    await store.consume('warm-up', limits, [1], undefined);
    const checks: Promise<unknown>[] = [];
    for (let round = 0; round < 4; round += 1) {
      for (let index = 0; index < 50; index += 1)
        checks.push(store.consume(`k${index % 5}`, limits, [1], undefined));
      // Sent on another connection while the client's checks are queued or running.
      if (round === 1) await admin.call('FUNCTION', 'FLUSH');
    }
    await Promise.all(checks);
    await admin.call('FUNCTION', 'DELETE', checkProgram.libraryName);
    await store.consume('k0', limits, [1], undefined);
    for (let index = 0; index < 5; index += 1)
      expect(await counted(store, `k${index}`)).toBe(index === 0 ? 41 : 40);
    expect(store.usesFunctions).toBe(true);
  });

  it('a library lost again right after the store loaded it: the check counts once, functions stay on', async () => {
    const client = connect(volatile.redis!.url);
    const admin = connect(volatile.redis!.url, true);
    await admin.call('FUNCTION', 'FLUSH');
    const store = new RedisStore({ client, prefix: 'lost-again:' });
    // A FUNCTION DELETE from elsewhere lands between the store's loads and its FCALLs (the
    // real server answers everything; only the moment is chosen).
    let losses = 0;
    const call = client.call.bind(client) as (...args: string[]) => Promise<unknown>;
    vi.spyOn(client, 'call').mockImplementation((async (...args: string[]) => {
      const reply = await call(...args);
      if (args[0] === 'FUNCTION' && args[1] === 'LOAD' && losses > 0) {
        losses -= 1;
        await admin.call('FUNCTION', 'DELETE', checkProgram.libraryName);
      }
      return reply;
    }) as never);

    // Lost once: loaded again, the FCALL counts.
    losses = 1;
    await store.consume('k', limits, [1], undefined);
    expect(store.usesFunctions).toBe(true);
    // Lost after every load: this check runs as a script, and the next one as a function.
    await admin.call('FUNCTION', 'DELETE', checkProgram.libraryName);
    losses = 2;
    await store.consume('k', limits, [1], undefined);
    expect(store.usesFunctions).toBe(true);
    await admin.config('RESETSTAT');
    await store.consume('k', limits, [1], undefined);
    expect(await counted(store, 'k')).toBe(3);
    expect(await commandCalls(admin)).toMatchObject({ 'function|load': 1, fcall: 3 });
    expect(store.usesFunctions).toBe(true);
  });
});

describe.skipIf(persistent.skip !== undefined)('a server with an append-only file', () => {
  it('after a restart the library is still there: no load, checks count on', async () => {
    const client = connect(persistent.redis!.url);
    const admin = connect(persistent.redis!.url, true);
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
