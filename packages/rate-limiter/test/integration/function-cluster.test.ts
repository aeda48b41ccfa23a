import { once } from 'node:events';
import { startPrivateRedisOrSkip, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { LimitPolicy } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { checkProgram } from '../../src/stores/lua-script.js';
import { migrateSlotKeys } from './redis-stats.js';

// Checks as a Redis function on a Cluster whose masters do not all hold the library: the store
// loads it where a call lands, and keeps using functions.

const { cluster, skip } = await startRedisClusterOrSkip(3);

// A window of ~35 years: no window starts mid-test, so counts are exact.
const big: LimitPolicy[] = [{ name: 'big', algorithm: 'fixed-window', limit: 1_000_000, windowMs: 2 ** 40 }];

/** Waits until `condition` holds (cluster state changes are asynchronous), up to 20 s. */
async function until(condition: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('condition never held');
}

describe.skipIf(skip !== undefined)('RedisStore functions on a Cluster', () => {
  const clients: Cluster[] = [];
  const servers: { stop(): Promise<void> }[] = [];
  const admins = (cluster?.nodes ?? []).map(({ host, port }) => new Redis(port, host, { lazyConnect: true }));

  async function connect(): Promise<Cluster> {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    return client;
  }
  async function masterOf(slot: number): Promise<Redis> {
    const ranges = await admins[0]!.cluster('SLOTS');
    const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
    return admins.find((admin) => admin.options.port === range[2]![1])!;
  }
  async function hasLibrary(admin: Redis): Promise<boolean> {
    const list = (await admin.call('FUNCTION', 'LIST', 'LIBRARYNAME', checkProgram.libraryName)) as unknown[];
    return list.length > 0;
  }
  async function counted(store: RedisStore, key: string): Promise<number> {
    const [outcome] = await store.consume(key, big, [0], undefined);
    const decision = outcome!.decisions[0]!;
    return decision.limit - decision.remaining;
  }

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    for (const admin of admins) admin.disconnect();
    await cluster?.stop();
    for (const server of servers) await server.stop();
  });

  it('a slot migrating (ASK) to a master without the library: the check counts once, and functions stay on', async () => {
    const client = await connect();
    const prefix = 'ask:';
    const store = new RedisStore({ client, prefix });
    const key = 'migrant';
    const slot = clusterSlot(`${prefix}{${key}}`);
    const source = await masterOf(slot);
    const target = admins.find((admin) => admin !== source)!;
    // The source holds the library (a first check), the target never did.
    expect(await counted(store, 'warm-up-elsewhere')).toBe(0);
    expect((await store.consume(key, big, [1], undefined))[0]!.decisions[0]!.allowed).toBe(true);
    await target.call('FUNCTION', 'FLUSH');
    expect(await hasLibrary(source)).toBe(true);
    expect(await hasLibrary(target)).toBe(false);

    // Migrating, the key already moved: the source answers ASK, the target runs the call.
    await migrateSlotKeys(source, target, slot);

    const [outcome] = await store.consume(key, big, [1], undefined);
    expect(outcome!.decisions[0]).toMatchObject({ allowed: true, remaining: 1_000_000 - 2 });
    expect(await hasLibrary(target)).toBe(true);
    expect(store.usesFunctions).toBe(true);

    const targetId = (await target.cluster('MYID')) as string;
    for (const admin of admins) await admin.cluster('SETSLOT', slot, 'NODE', targetId);
    expect(await counted(store, key)).toBe(2);
    expect(store.usesFunctions).toBe(true);
  });
  it('a batch where some masters lost the library and others not counts each request once', async () => {
    const client = await connect();
    const prefix = 'mixed:';
    const store = new RedisStore({ client, prefix });
    const keys = Array.from({ length: 60 }, (_, index) => `user-${index}`);
    const requests = keys.map((key) => ({ key, limits: big, costs: [1, 1] }));
    await store.consumeMany(requests, undefined);
    // One master lost the library (a restart without persistence): its calls in each batch
    // answer "Function not found" next to the others' replies.
    const masters = new Set(keys.map((key) => client.slots[clusterSlot(`${prefix}{${key}}`)]![0]));
    expect(masters.size).toBe(3);
    await admins[0]!.call('FUNCTION', 'FLUSH');
    const outcomes = await store.consumeMany(requests, undefined);
    expect(outcomes.every((pair) => pair.every((outcome) => outcome.decisions[0]!.allowed))).toBe(true);
    for (const key of keys) expect(await counted(store, key)).toBe(4);
    expect(await hasLibrary(admins[0]!)).toBe(true);
    expect(store.usesFunctions).toBe(true);
  });

  it('a slot moved (MOVED) to a master without the library: loaded there, each request counted once', async () => {
    const client = await connect();
    const prefix = 'moved:';
    const store = new RedisStore({ client, prefix });
    const movers = Array.from({ length: 4 }, (_, index) => `{mover}:user-${index}`);
    const slot = clusterSlot(`${prefix}{${movers[0]}}`);
    const source = await masterOf(slot);
    const target = admins.find((admin) => admin !== source)!;
    const requests = movers.map((key) => ({ key, limits: big, costs: [1] }));
    await store.consumeMany(requests, undefined);
    await target.call('FUNCTION', 'FLUSH');
    const targetId = (await target.cluster('MYID')) as string;
    await migrateSlotKeys(source, target, slot);
    for (const admin of admins) await admin.cluster('SETSLOT', slot, 'NODE', targetId);
    await store.consumeMany(requests, undefined);
    for (const key of movers) expect(await counted(store, key)).toBe(2);
    expect(await hasLibrary(target)).toBe(true);
    expect(store.usesFunctions).toBe(true);
  });
  it('out of memory, batched checks of keys over their limits are still refused (as scripts are)', async () => {
    const client = await connect();
    const store = new RedisStore({ client, prefix: 'oom:' });
    const one: LimitPolicy[] = [{ name: 'one', algorithm: 'fixed-window', limit: 1, windowMs: 2 ** 40 }];
    const requests = Array.from({ length: 30 }, (_, index) => ({
      key: `user-${index}`,
      limits: one,
      costs: [1],
    }));
    await store.consumeMany(requests, undefined);
    await Promise.all(admins.map((admin) => admin.config('SET', 'maxmemory', '1')));
    try {
      const outcomes = await store.consumeMany(requests, undefined);
      expect(outcomes.map(([outcome]) => outcome!.decisions[0]!.allowed)).toEqual(requests.map(() => false));
    } finally {
      await Promise.all(admins.map((admin) => admin.config('SET', 'maxmemory', '0')));
    }
    expect(store.usesFunctions).toBe(true);
  });

  it('a replica promoted to master already holds the library (replicated): no load, counts go on', async () => {
    const replica = await startPrivateRedisOrSkip([
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      '2000',
    ]);
    if (replica.skip !== undefined) return;
    // Stopped after the cluster: it serves slots from now on.
    servers.push(replica.redis);
    const replicaAdmin = new Redis(replica.redis.url);
    try {
      const client = await connect();
      const prefix = 'promoted:';
      const store = new RedisStore({ client, prefix });
      const key = 'k';
      const master = await masterOf(clusterSlot(`${prefix}{${key}}`));
      await store.consume(key, big, [1], undefined);
      // The new server joins as the master's replica and catches up.
      await replicaAdmin.cluster('MEET', '127.0.0.1', master.options.port!);
      const masterId = (await master.cluster('MYID')) as string;
      await until(async () => ((await replicaAdmin.cluster('NODES')) as string).includes(masterId));
      await replicaAdmin.cluster('REPLICATE', masterId);
      await until(async () => (await replicaAdmin.info('replication')).includes('master_link_status:up'));
      expect(await hasLibrary(replicaAdmin)).toBe(true);
      // A failover: the replica takes the master's slots.
      await replicaAdmin.cluster('FAILOVER');
      await until(async () => (await replicaAdmin.info('replication')).includes('role:master'));
      await until(async () =>
        ((await master.cluster('NODES')) as string)
          .split('\n')
          .some((line) => line.includes('myself') && line.includes('slave')),
      );
      await replicaAdmin.config('RESETSTAT');
      await store.consume(key, big, [1], undefined);
      expect(await counted(store, key)).toBe(2);
      const stats = await replicaAdmin.info('commandstats');
      expect(stats).toMatch(/cmdstat_fcall:calls=2,/);
      expect(stats).not.toMatch(/cmdstat_function\|load/);
      expect(store.usesFunctions).toBe(true);
    } finally {
      replicaAdmin.disconnect();
    }
  }, 30_000);

  // Last: the paused master stays paused until the cluster is stopped.
  it('a master without the library is loaded while another master is paused, without waiting for it', async () => {
    const client = await connect();
    const prefix = 'paused:';
    const store = new RedisStore({ client, prefix });
    const keys = Array.from({ length: 30 }, (_, index) => `user-${index}`);
    const masterOfKey = (key: string) => client.slots[clusterSlot(`${prefix}{${key}}`)]![0]!;
    // The masters now (a failover above demoted one of the first three).
    const masters: Redis[] = [];
    for (const admin of admins)
      if ((await admin.info('replication')).includes('role:master')) masters.push(admin);
    const [paused, reloaded] = masters;
    const portOf = (admin: Redis) => `127.0.0.1:${admin!.options.port}`;
    const key = keys.find((candidate) => masterOfKey(candidate) === portOf(reloaded!))!;
    await reloaded!.call('FUNCTION', 'FLUSH');
    // Long past the test's own timeout: a check that waited for this master would fail the test.
    await paused!.call('CLIENT', 'PAUSE', '60000', 'ALL');
    const [outcome] = await store.consume(key, big, [1], undefined);
    expect(outcome!.decisions[0]!.allowed).toBe(true);
    expect(await hasLibrary(reloaded!)).toBe(true);
    expect(store.usesFunctions).toBe(true);
  }, 10_000);
});
