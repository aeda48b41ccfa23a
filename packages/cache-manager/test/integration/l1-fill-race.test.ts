import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { heard, Redis, redisUp, redisUrl, sharedRedisCaches } from './helpers.js';
import { ReplyHoldingProxy } from './reply-holding-proxy.js';

/**
 * An L1 fill from an L2 read must not undo a change that reached the key while the read was in
 * flight: the read answered with the value from before the change, and put in L1 after it, that
 * value was served by this instance until its TTL (a.get after a.set returned the old value,
 * while L2 and every other instance held the new one).
 */

type Reader = (cache: Cache, key: string) => Promise<unknown>;
const readers: Record<string, Reader> = {
  get: (cache, key) => cache.get(key),
  getOrSet: (cache, key) => cache.getOrSet(key, async () => 'factory'),
  getMany: (cache, key) => cache.getMany([key]),
  getOrSetMany: (cache, key) => cache.getOrSetMany([key], async (keys) => keys.map(() => 'factory')),
  has: (cache, key) => cache.has(key),
};

/** A change of `key` (tagged `t-<key>`) and what a read of the key must find after it. */
interface Change {
  run: (cache: Cache, key: string) => Promise<unknown>;
  after: string | undefined;
}
const localChanges: Record<string, Change> = {
  set: { run: (cache, key) => cache.set(key, 'new'), after: 'new' },
  setMany: { run: (cache, key) => cache.setMany([{ key, value: 'new' }]), after: 'new' },
  delete: { run: (cache, key) => cache.delete(key), after: undefined },
  expire: { run: (cache, key) => cache.expire(key), after: undefined },
  deleteByTag: { run: (cache, key) => cache.deleteByTag(`t-${key}`), after: undefined },
};

describe.skipIf(!redisUp)('an L1 fill racing a change of its key on the same instance', () => {
  const { open } = sharedRedisCaches('cm_fill_race');
  const configs: Record<string, CacheOptions> = {
    default: {},
    'batching: false': { batching: false },
    "writeMode: 'background'": { writeMode: 'background' },
  };
  let writer: Cache;
  const readerCaches = new Map<string, Cache>();
  beforeAll(async () => {
    writer = await open({ ttlMs: 60_000 });
    for (const [name, options] of Object.entries(configs)) {
      readerCaches.set(name, await open({ ttlMs: 60_000, ...options }));
    }
  });

  for (const [configName, options] of Object.entries(configs)) {
    const changes =
      options.writeMode === 'background'
        ? { set: localChanges.set!, setMany: localChanges.setMany! }
        : localChanges;
    for (const [readerName, read] of Object.entries(readers)) {
      for (const [changeName, change] of Object.entries(changes)) {
        it(`${configName}: ${readerName} in flight, then an awaited ${changeName}: the change holds in L1`, async () => {
          const view = readerCaches.get(configName)!;
          const key = `${configName}-${readerName}-${changeName}`.replace(/[^a-zA-Z-]/g, '');
          for (let trial = 0; trial < 3; trial += 1) {
            const trialKey = `${key}-${trial}`;
            await writer.set(trialKey, 'old', { tags: [`t-${trialKey}`] });
            expect(view.getLocal(trialKey)).toBeUndefined();
            const reading = read(view, trialKey); // its L2 read is sent now
            await change.run(view, trialKey);
            await reading;
            // A read-through whose L2 read came after a delete may run its factory and cache
            // that: a later value, not the old one.
            const after = [change.after];
            if (readerName.startsWith('getOrSet') && change.after === undefined) after.push('factory');
            expect(after).toContain(view.getLocal(trialKey) ?? change.after);
            expect(after).toContain(await view.get(trialKey));
          }
        });
      }
    }
  }
});

const remoteChanges: Record<string, Change> = {
  set: localChanges.set!,
  delete: localChanges.delete!,
  expire: localChanges.expire!,
  deleteByTag: localChanges.deleteByTag!,
};

describe.skipIf(!redisUp)('an L1 fill racing another instance’s change (its bus message first)', () => {
  const { prefix, open } = sharedRedisCaches('cm_fill_race_bus');
  let proxy: ReplyHoldingProxy;
  let client: Redis;
  let reader: Cache;
  let writer: Cache;
  beforeAll(async () => {
    proxy = await ReplyHoldingProxy.start(Number(new URL(redisUrl).port));
    client = new Redis(proxy.url);
    client.on('error', () => {});
    reader = new Cache({ redis: client, prefix, ttlMs: 60_000, operationTimeoutMs: generousDeadlineMs });
    await reader.ready();
    writer = await open({ ttlMs: 60_000 });
  });
  afterAll(async () => {
    await reader?.close();
    client?.disconnect();
    await proxy?.close();
  });

  for (const [readerName, read] of Object.entries(readers)) {
    for (const [changeName, change] of Object.entries(remoteChanges)) {
      it(`${readerName} answered with the old value, held while ${changeName}'s message arrives: not put in L1`, async () => {
        const key = `bus-${readerName}-${changeName}`;
        // The first write's message has come before the read starts: the message awaited
        // below is the change's (a late one of this write would stand in for it).
        const written = heard(reader, key);
        await writer.set(key, 'old', { tags: [`t-${key}`] });
        await written;
        // The reader's L2 read reaches Redis before the change; its answer is held.
        proxy.holdRepliesAfter(new RegExp(key));
        const reading = read(reader, key);
        await proxy.replyHeld();
        const message = heard(reader, changeName === 'deleteByTag' ? `t-${key}` : key);
        await change.run(writer, key);
        await message;
        proxy.release();
        const seen = await reading;
        // A single-key read reads again (after the change: current, and put in L1); a batch
        // read serves what L2 answered (it asked before the change)...
        if (readerName === 'get') expect(seen).toBe(change.after);
        if (readerName === 'getMany') expect(seen).toEqual(['old']);
        // ...and neither leaves L1 with the value from before the change it missed (a
        // read-through that reads a miss again runs its factory: a later value).
        const after = [change.after];
        if (readerName.startsWith('getOrSet') && change.after === undefined) after.push('factory');
        expect(after).toContain(reader.getLocal(key) ?? change.after);
        expect(after).toContain(await reader.get(key));
      });
    }
  }
});
