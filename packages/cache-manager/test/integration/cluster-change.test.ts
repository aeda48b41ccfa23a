import { delay } from '@noa/core';
import { type ReplicatedRedisCluster, startReplicatedRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { keySlot } from './key-slot.js';

/**
 * A migrating user's Cluster does not stand still: slots are resharded between masters while
 * traffic runs (MOVED, and ASK while a slot is half-moved) and a master fails over to its
 * replica. Reads must never see another key's value, nor (while no node is lost) an older version
 * than the one the same instance wrote and awaited; tags and the bus must keep working afterwards.
 */
let cluster: ReplicatedRedisCluster | undefined;
let skip: string | undefined;
const clients: Cluster[] = [];
const caches: Cache[] = [];

beforeAll(async () => {
  ({ cluster, skip } = await startReplicatedRedisClusterOrSkip(3, 1));
}, 60_000);
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const client of clients) client.disconnect();
  await cluster?.stop();
});

async function connect(): Promise<Cluster> {
  const client = new Cluster(cluster!.nodes, { slotsRefreshInterval: 1_000 });
  clients.push(client);
  await new Promise<void>((resolve) => client.once('ready', () => resolve()));
  return client;
}

async function cacheOn(prefix: string): Promise<Cache> {
  const cache = new Cache({ redis: await connect(), prefix, ttlMs: 600_000, operationTimeoutMs: 2_000 });
  caches.push(cache);
  await cache.ready();
  return cache;
}

/**
 * Writes new versions of `keys` on `writer` (awaited) and reads them on `writer` and `reader`
 * until `stop` resolves; collects every read that is not a version of its own key, or that on
 * the writer is older than what it wrote last.
 */
function traffic(writer: Cache, reader: Cache, keys: string[], stop: Promise<void>, strict = true) {
  const wrong: string[] = [];
  const latest = new Map<string, number>();
  let done = false;
  void stop.then(() => {
    done = true;
  });
  let rounds = 0;
  const loop = (async () => {
    while (!done) {
      rounds += 1;
      // One round per turn of the event loop, as requests arriving over sockets come: while the
      // breaker is open every call is answered at once (L1, no Redis I/O), so without this the
      // loop ran on microtasks alone, never letting the breaker's PING probe read its reply nor
      // the test's own timer stop the traffic (it spun until the test timed out).
      await new Promise<void>((resolve) => setImmediate(resolve));
      await Promise.all(
        keys.map(async (key) => {
          const version = (latest.get(key) ?? 0) + 1;
          await writer.set(key, { key, version }, { tags: ['all', `t:${key}`] });
          latest.set(key, version);
          const own = await writer.get<{ key: string; version: number }>(key);
          // strict (no outage): the writer reads its own awaited write or a newer one. During a
          // failover a write may be lost and a read degrade to a miss, by design (README: writes
          // while Redis is unreachable are lost, not queued): only another key's value is wrong.
          if (strict ? own?.key !== key || own.version < version : own !== undefined && own.key !== key)
            wrong.push(`writer ${key}: ${JSON.stringify(own)} < ${version}`);
          const other = await reader.get<{ key: string; version: number }>(key);
          if (other !== undefined && other.key !== key) wrong.push(`reader ${key}: ${JSON.stringify(other)}`);
        }),
      );
    }
  })();
  // A test that fails midway closes the caches under the loop: its rejection is the test's to
  // await (finished), never an unhandled one.
  loop.catch(() => undefined);
  return { wrong, latest, finished: loop, rounds: () => rounds };
}

/** The hash slots the node `admin` serves, from its own line of CLUSTER NODES. */
async function ownSlots(admin: Redis): Promise<number[]> {
  const lines = String(await admin.cluster('NODES')).split('\n');
  const own = lines.find((line) => line.includes('myself')) ?? '';
  const slots: number[] = [];
  for (const range of own.split(' ').slice(8)) {
    if (range.startsWith('[')) continue;
    const [from, to = from] = range.split('-').map(Number);
    if (from === undefined || to === undefined || Number.isNaN(from)) continue;
    for (let slot = from; slot <= to; slot += 1) slots.push(slot);
  }
  return slots;
}

/**
 * Moves `slots` from `source` to `target` one at a time, as `redis-cli --cluster reshard`
 * does (importing, migrating, MIGRATE of the slot's keys, then the owner everywhere), pausing
 * between steps so that traffic meets half-moved slots (ASK) and moved ones (MOVED).
 */
async function moveSlots(admins: Redis[], source: Redis, target: Redis, slots: number[]): Promise<void> {
  const sourceId = String(await source.cluster('MYID'));
  const targetId = String(await target.cluster('MYID'));
  for (const slot of slots) {
    await target.cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await source.cluster('SETSLOT', slot, 'MIGRATING', targetId);
    await delay(5);
    while (true) {
      const keys = (await source.cluster('GETKEYSINSLOT', slot, 100)) as string[];
      if (keys.length === 0) break;
      await source.migrate('127.0.0.1', target.options.port!, '', 0, 5_000, 'REPLACE', 'KEYS', ...keys);
    }
    for (const admin of [target, source, ...admins.filter((node) => node !== source && node !== target)]) {
      await admin.cluster('SETSLOT', slot, 'NODE', targetId).catch(() => undefined);
    }
  }
}

describe('a Redis Cluster under change', () => {
  it('resharding during traffic: no wrong value; tags and the bus work after it', async (context) => {
    if (skip) context.skip(skip);
    await cluster!.waitHealthy();
    const prefix = 'reshard:';
    const writer = await cacheOn(prefix);
    const reader = await cacheOn(prefix);
    const keys = Array.from({ length: 200 }, (_, index) => `k${index}`);
    const masters = await cluster!.masters();
    const admins = masters.map((address) => new Redis(Number(address.split(':')[1])));
    try {
      let stopTraffic!: () => void;
      const stop = new Promise<void>((resolve) => {
        stopTraffic = resolve;
      });
      const load = traffic(writer, reader, keys, stop);
      await delay(200);
      // Half of the first master's slots go to the second, with keys of ours in them.
      const slots = await ownSlots(admins[0]!);
      const ours = new Set(keys.map((key) => keySlot(`${prefix}v:${key}`)));
      const moving = slots.filter((slot) => ours.has(slot)).slice(0, 40);
      expect(moving.length).toBeGreaterThan(5);
      await moveSlots(admins, admins[0]!, admins[1]!, moving);
      await delay(500);
      stopTraffic();
      await load.finished;
      expect(load.wrong).toEqual([]);
      expect(load.rounds()).toBeGreaterThan(2);

      for (const key of keys) expect(await writer.get(key)).toEqual({ key, version: load.latest.get(key) });
      // The reader's L1 copies lag the last writes by one bus latency.
      await readsConverge(
        reader,
        keys,
        (key) => load.latest.get(key),
        'the reader to see the last writes after the reshard',
      );
      // The bus: a set on the writer evicts the reader's L1 copy.
      await writer.set('k0', { key: 'k0', version: -1 }, { tags: ['all'] });
      await until(
        async () => (await reader.get<{ version: number }>('k0'))?.version === -1,
        'the bus after the reshard',
      );
      expect(await reader.get('k0')).toEqual({ key: 'k0', version: -1 });
      // Tags: every key, on moved slots and others, is deleted by its tag.
      expect(await reader.deleteByTag('all')).toBe(keys.length);
      for (const key of keys) expect(await reader.get(key)).toBeUndefined();
      // The other instance's L1 copies go with the tag's bus message.
      await until(
        async () => (await writer.getMany(keys)).every((value) => value === undefined),
        'the tag message',
      );
    } finally {
      for (const admin of admins) admin.disconnect();
    }
  }, 120_000);

  it('a master failing over to its replica during traffic: no wrong value; tags and the bus work after it', async (context) => {
    if (skip) context.skip(skip);
    await cluster!.waitHealthy();
    const prefix = 'failover:';
    const writer = await cacheOn(prefix);
    const reader = await cacheOn(prefix);
    const keys = Array.from({ length: 100 }, (_, index) => `k${index}`);
    let stopTraffic!: () => void;
    const stop = new Promise<void>((resolve) => {
      stopTraffic = resolve;
    });
    const load = traffic(writer, reader, keys, stop, false);
    await delay(300);
    const [victim] = await cluster!.masters();
    cluster!.kill(Number(victim!.split(':')[1]));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await cluster!.masters()).includes(victim!)) await delay(200);
    await delay(3_000);
    stopTraffic();
    await load.finished;
    expect(load.wrong).toEqual([]);

    // After the failover, writes land: the writer reads them at once, the reader once the bus
    // tells it (its L1 copies lag by one bus latency, longer while its subscriber reconnects
    // after losing the killed master; the resync covers messages lost meanwhile: README).
    for (const key of keys) await writer.set(key, { key, version: 1_000 }, { tags: ['all'] });
    for (const key of keys) expect(await writer.get(key)).toEqual({ key, version: 1_000 });
    await readsConverge(reader, keys, () => 1_000, 'the reader to see every write after the failover');
    await writer.set('k1', { key: 'k1', version: 1_001 }, { tags: ['all'] });
    await until(
      async () => (await reader.get<{ version: number }>('k1'))?.version === 1_001,
      'the bus after the failover',
    );
    expect(await reader.get('k1')).toEqual({ key: 'k1', version: 1_001 });
    expect(await reader.deleteByTag('all')).toBe(keys.length);
    for (const key of keys) expect(await reader.get(key)).toBeUndefined();
    await until(
      async () => (await writer.getMany(keys)).every((value) => value === undefined),
      'the tag message',
    );
  }, 120_000);
});

/** Waits (at most 15 s) until `check` holds; the reader's L1 keeps a copy for 10 min, so only the bus can make it hold. */
/** Waits until `cache` reads every key as its own value at `version(key)` (its L1 lags by a bus latency). */
async function readsConverge(
  cache: Cache,
  keys: string[],
  version: (key: string) => number | undefined,
  what: string,
): Promise<void> {
  await until(async () => {
    const values = (await cache.getMany(keys)) as ({ key: string; version: number } | undefined)[];
    return values.every(
      (value, index) => value?.key === keys[index] && value?.version === version(keys[index]!),
    );
  }, what);
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}
