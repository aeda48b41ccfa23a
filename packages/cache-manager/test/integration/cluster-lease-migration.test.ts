import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { keySlot } from './key-slot.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * A key's lease while its slot moves between masters: the SET NX, the waiters' polls, the
 * value's write and the lease's release (a script) meet ASK while the slot is half-moved and
 * MOVED once it has moved. The factory must still run once, and the lease be released, not
 * left to expire.
 */
const shared = usePrivateCluster('a Cluster whose slot moves during a lease');
const clients: Cluster[] = [];
const caches: Cache[] = [];
const admins: Redis[] = [];

afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  for (const client of [...clients, ...admins]) client.disconnect();
});

async function cacheOn(prefix: string): Promise<Cache> {
  const client = new Cluster(shared.nodes());
  clients.push(client);
  await new Promise<void>((resolve) => client.once('ready', () => resolve()));
  const cache = new Cache({
    redis: client,
    prefix,
    ttlMs: 600_000,
    operationTimeoutMs: 2_000,
    lock: { leaseMs: 20_000, timeoutMs: 20_000, pollMs: 50 },
  });
  caches.push(cache);
  await cache.ready();
  return cache;
}

/** The master serving `slot` and another one, as admin connections. */
async function ownerAndOther(slot: number): Promise<{ source: Redis; target: Redis; all: Redis[] }> {
  const all = shared.nodes().map(({ host, port }) => new Redis(port, host));
  admins.push(...all);
  const ranges = await all[0]!.cluster('SLOTS');
  const owner = ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
  const source = all.find((admin) => admin.options.port === owner)!;
  return { source, target: all.find((admin) => admin !== source)!, all };
}

async function startMigration(source: Redis, target: Redis, slot: number): Promise<void> {
  await target.cluster('SETSLOT', slot, 'IMPORTING', String(await source.cluster('MYID')));
  await source.cluster('SETSLOT', slot, 'MIGRATING', String(await target.cluster('MYID')));
}

async function finishMigration(source: Redis, target: Redis, all: Redis[], slot: number): Promise<void> {
  for (;;) {
    const keys = (await source.cluster('GETKEYSINSLOT', slot, 100)) as string[];
    if (keys.length === 0) break;
    await source.migrate('127.0.0.1', target.options.port!, '', 0, 5_000, 'REPLACE', 'KEYS', ...keys);
  }
  const targetId = String(await target.cluster('MYID'));
  for (const admin of [target, source, ...all.filter((node) => node !== source && node !== target)])
    await admin.cluster('SETSLOT', slot, 'NODE', targetId);
}

describe.skipIf(!shared.installed)('a lease whose slot moves between masters', () => {
  for (const finishMidRun of [false, true]) {
    it(`runs the factory once and releases the lease (slot ${finishMidRun ? 'moved during the run' : 'half-moved throughout'})`, async () => {
      const prefix = `mig${finishMidRun ? 'done' : 'half'}:`;
      const key = `{t${finishMidRun ? 1 : 2}}x`;
      const slot = keySlot(`t${finishMidRun ? 1 : 2}`);
      const [a, b] = [await cacheOn(prefix), await cacheOn(prefix)];
      const { source, target, all } = await ownerAndOther(slot);
      // A key of ours already in the slot, on the source: ASK only for keys it lacks.
      await a.set(`{t${finishMidRun ? 1 : 2}}other`, 'before');
      await startMigration(source, target, slot);
      let runs = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      const factory = async () => {
        runs += 1;
        started();
        await gate;
        return { computed: key };
      };
      const first = a.getOrSet(key, factory);
      await running;
      const second = b.getOrSet(key, factory);
      const leaseKey = `${prefix}__lease:${key}`;
      const probe = clients[0]!;
      expect(await probe.exists(leaseKey)).toBe(1);
      // Taken on the target through ASK: the source, asked directly, redirects.
      expect(String(await source.exists(leaseKey).catch((error: unknown) => error))).toMatch(
        /^ReplyError: ASK /,
      );
      if (finishMidRun) await finishMigration(source, target, all, slot);
      release();
      expect(await first).toEqual({ computed: key });
      expect(await second).toEqual({ computed: key });
      expect(runs).toBe(1);
      // Released once the value landed, not left for leaseMs.
      expect(await probe.exists(leaseKey)).toBe(0);
      const c = await cacheOn(prefix);
      expect(await c.get(key)).toEqual({ computed: key });
      expect(await c.get(`{t${finishMidRun ? 1 : 2}}other`)).toBe('before');
      if (!finishMidRun) await finishMigration(source, target, all, slot);
    }, 60_000);
  }
});
