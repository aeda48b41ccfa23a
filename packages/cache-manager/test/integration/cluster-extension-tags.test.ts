import { delay } from '@noa/core';
import { uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * On a Cluster a run's extension of the value it replaces (`extend-if-unchanged.lua`, see
 * refresh-past-expiry.test.ts) cannot reach the value's tag sets, which live in other slots:
 * they get their own `PEXPIRE … GT`. Those are sent with the script, not after its answer (one
 * round trip, not two): extending a tag set whose value was not extended (deleted, rewritten
 * or expired since the read) harms nothing, since PEXPIRE never creates a set a tag delete
 * removed, GT never shortens one, and a longer-lived set only names keys a tag delete checks.
 *
 * The script's reply is held back on the client (the command reaches Redis; only its answer
 * waits) to show that the tag sets' PEXPIREs do not wait for it.
 */
const { installed, client: cluster } = usePrivateCluster('tag sets extended beside the value on a Cluster');
const prefix = `${uniqueName('cm_extension_tags')}:`;
const caches: Cache[] = [];
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
});

function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe.skipIf(!installed)('a run over a tagged value on a Redis Cluster', () => {
  it('extends the tag sets without waiting for the value’s script', async () => {
    const key = 'tagged';
    const tags = ['t-one', 't-two'];
    /** While armed, script calls on the value (the run's extension) have their replies held until `released`. */
    let armed = false;
    const extensionSent = gate();
    const released = gate();
    const tagSetExtended = new Map<string, Promise<unknown>>();
    const allTagSets = gate();
    const client = new Proxy(cluster(), {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        const call = (...args: unknown[]) => (value as (...all: unknown[]) => unknown).apply(target, args);
        // The script goes as EVALSHA, or EVAL once a node answered NOSCRIPT.
        if (property === 'evalsha' || property === 'eval')
          return (...args: unknown[]) => {
            const reply = call(...args) as Promise<unknown>;
            if (!armed || !String(args[2]).endsWith(`v:${key}`)) return reply;
            extensionSent.open();
            return reply.then(
              async (answer) => {
                await released.opened;
                return answer;
              },
              async (error) => {
                await released.opened;
                throw error;
              },
            );
          };
        if (property === 'pexpire')
          return (...args: unknown[]) => {
            const reply = call(...args) as Promise<unknown>;
            const tag = tags.find((name) => String(args[0]).endsWith(`__tag:${name}`));
            if (tag) {
              tagSetExtended.set(tag, reply);
              if (tagSetExtended.size === tags.length) allTagSets.open();
            }
            return reply;
          };
        return value.bind(target);
      },
    });
    const open = async (redis: Cluster, bus: boolean) => {
      const cache = new Cache({ redis, prefix, bus, operationTimeoutMs: 5_000 });
      caches.push(cache);
      await cache.ready();
      return cache;
    };
    const a = await open(client, false);
    const b = await open(cluster(), true);
    await b.set(key, 'first', { ttlMs: 100, graceMs: 3_000, tags });
    await delay(150);
    tagSetExtended.clear();
    armed = true;
    const finish = gate();
    const served = a.getOrSet(
      key,
      async () => {
        await finish.opened;
        return 'refreshed';
      },
      { ttlMs: 60_000, tags },
    );
    await extensionSent.opened;
    // The script's answer is held: the tag sets' PEXPIREs go out all the same (before: only
    // once it had answered, a second round trip).
    const outcome = await Promise.race([
      allTagSets.opened.then(() => 'sent'),
      delay(5_000).then(() => 'waited'),
    ]);
    armed = false;
    released.open();
    expect(outcome).toBe('sent');
    await Promise.all(tagSetExtended.values());
    // Extended to `lock.leaseMs` (10 s by default) and more, past their own 3 s.
    for (const tag of tags) expect(await cluster().pttl(`${prefix}__tag:${tag}`)).toBeGreaterThan(5_000);
    finish.open();
    expect(await served).toBe('refreshed');
    const c = await open(cluster(), false);
    expect(await c.get(key)).toBe('refreshed');
  });
});
