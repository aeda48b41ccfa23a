import { delay } from '@noa/core';
import { startPrivateRedisOrSkip, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { counting, resyncWatcher } from './helpers.js';

/**
 * A backend the tests below run on: caches on it, and the bus outage (`CLIENT KILL TYPE
 * pubsub` on every node, which the caches' other connections survive).
 */
interface Backend {
  open(prefix: string, options?: CacheOptions): Promise<Cache>;
  killBus(): Promise<void>;
  /**
   * Stalls the node that holds `redisKey` for `ms` (`CLIENT PAUSE … ALL`); resolves to a wait
   * for the stall's end (a PING to that node, which the pause holds until it ends).
   */
  stall(redisKey: string, ms: number): Promise<() => Promise<unknown>>;
  /**
   * How many single and batch reads `cache` sent so far (one node only: a Cluster's batch
   * read is a GET per key, sent together).
   */
  reads(cache: Cache): { get: number; mget: number } | undefined;
  close(): Promise<void>;
}

/**
 * Options of every cache below. The deadline is generous: with 150 ms for every cache, under
 * load (4 CPU burners on 2 cores) a cache's first read of the shared msgpack structures, or a
 * fresh reader's MGET, outlived it; the runner then could not decode the values it had to
 * vouch for (or the reader saw none), and a value the test expects cached was not, in one run
 * of three. Only the stalled-read case needs a read to fail: its runner has a deadline of its
 * own, below a stall long enough for that.
 */
const defaults: CacheOptions = {
  graceMs: 60_000,
  operationTimeoutMs: 5_000,
  breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 },
};

/** The stalled-read case's runner deadline, and the stall it cannot outlast. */
const STALLED_READ_DEADLINE_MS = 1_000;
const STALL_MS = 3_000;

const single = await startPrivateRedisOrSkip();
const cluster = await startRedisClusterOrSkip(3);

function singleNode(): Backend {
  const server = single.redis!;
  const admin = new Redis(server.url);
  const clients: Redis[] = [admin];
  const caches: Cache[] = [];
  const calls = new Map<Cache, Map<string, number>>();
  return {
    async open(prefix, options = {}) {
      const connection = new Redis(server.url);
      connection.on('error', () => {});
      clients.push(connection);
      const { client, calls: made } = counting(connection, ['getBuffer', 'mgetBuffer']);
      const cache = new Cache({ redis: client, prefix, ...defaults, ...options });
      calls.set(cache, made);
      caches.push(cache);
      await cache.ready();
      return cache;
    },
    async killBus() {
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    },
    async stall(_redisKey, ms) {
      await server.pause(ms);
      return () => admin.ping();
    },
    reads(cache) {
      const made = calls.get(cache);
      return { get: made?.get('getBuffer') ?? 0, mget: made?.get('mgetBuffer') ?? 0 };
    },
    async close() {
      await Promise.all(caches.map((cache) => cache.close()));
      for (const client of clients) client.disconnect();
      await server.stop();
    },
  };
}

function threeMasters(): Backend {
  const nodes = cluster.cluster!.nodes;
  const admins = nodes.map(({ host, port }) => new Redis(port, host));
  const clients: (Cluster | Redis)[] = [...admins];
  const caches: Cache[] = [];
  let router: Cluster | undefined;
  const connect = async () => {
    const client = new Cluster(nodes);
    client.on('error', () => {});
    clients.push(client);
    await new Promise<void>((resolve) => client.once('ready', () => resolve()));
    return client;
  };
  return {
    async open(prefix, options = {}) {
      const cache = new Cache({ redis: await connect(), prefix, ...defaults, ...options });
      caches.push(cache);
      await cache.ready();
      return cache;
    },
    async killBus() {
      await Promise.all(admins.map((admin) => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')));
    },
    async stall(redisKey, ms) {
      router ??= await connect();
      const slot = Number(await admins[0]!.cluster('KEYSLOT', redisKey));
      const [owner] = router.slots[slot] ?? [];
      const admin = admins.find((candidate) => `127.0.0.1:${candidate.options.port}` === owner);
      expect(admin).toBeDefined();
      await admin!.client('PAUSE', ms, 'ALL');
      return () => admin!.ping();
    },
    reads: () => undefined,
    async close() {
      await Promise.all(caches.map((cache) => cache.close()));
      for (const client of clients) client.disconnect();
      await cluster.cluster!.stop();
    },
  };
}

/** Waits (up to 5 s) for `resynced()`, the runner's bus having subscribed again. */
async function waitForResync(resynced: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline && !resynced()) await delay(10);
  expect(resynced()).toBe(true);
}

/**
 * What `cache` heard from other instances (`<type>:<key>`), and a wait until it heard `expected`.
 * On a Cluster a message reaches a subscriber on another node through the cluster bus, after
 * the PUBLISH reply and out of order: under load a writer's `set`, published before the run
 * started, arrived 20 ms into it and superseded the run of its key, which then cached nothing
 * (rightly: a runner cannot tell when a message was sent). The tests wait for the writer's
 * messages before they start the run.
 */
function hearing(cache: Cache): (expected: readonly string[]) => Promise<void> {
  const heard = new Set<string>();
  cache.on('invalidation', (message) => {
    for (const key of message.k) heard.add(`${message.t}:${key}`);
  });
  return async (expected) => {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !expected.every((entry) => heard.has(entry))) await delay(5);
    expect(expected.filter((entry) => !heard.has(entry))).toEqual([]);
  };
}

/** A `getOrSetMany` factory that waits for `finish`, then returns the values given to it. */
function heldFactory() {
  let finish: ((values: Record<string, string>) => void) | undefined;
  const factory = (keys: readonly string[]) =>
    new Promise<string[]>((resolve) => {
      finish = (values) => resolve(keys.map((key) => values[key]!));
    });
  return {
    factory,
    started: async () => {
      while (finish === undefined) await delay(5);
    },
    finish: (values: Record<string, string>) => finish!(values),
  };
}

/**
 * `getOrSetMany` runs that span a bus reconnect: as `getOrSet`'s, each key's value is cached
 * only if L2 still holds what the run saw before it started (a failed read proves nothing),
 * checked for all the batch's keys in one L2 read.
 */
function describeBatchReconnect(name: string, skip: boolean, backend: () => Backend): void {
  // Concurrent with the other backend's block (a server or cluster of its own); its own tests
  // one after another (each kills the bus of every cache on its backend).
  describe.skipIf(skip).concurrent(`getOrSetMany across a bus reconnect: ${name}`, () => {
    const it = test.sequential;
    let opened: Backend | undefined;
    const setup = () => {
      opened ??= backend();
      return opened;
    };
    afterAll(async () => {
      await opened?.close();
    });

    it('caches the keys L2 still holds as the run saw them, and not one written in the outage', async () => {
      const { open, killBus, reads } = setup();
      const prefix = 'batch-spanning:';
      const { logger, resynced } = resyncWatcher();
      const runner = await open(prefix, { logger });
      const heard = hearing(runner);
      const writer = await open(prefix);
      // Values in grace in L2: the run sees their `createdAt`.
      for (const key of ['same', 'also-same', 'written']) {
        await writer.set(key, 'old');
        await writer.expire(key);
      }
      await heard(['same', 'also-same', 'written'].flatMap((key) => [`set:${key}`, `exp:${key}`]));
      const held = heldFactory();
      const running = runner.getOrSetMany(['same', 'also-same', 'written'], held.factory);
      await held.started();
      await killBus();
      // The write lands in L2 while the runner's bus is down (its message is lost to it).
      await writer.set('written', 'newer');
      await waitForResync(resynced);
      const before = reads(runner);
      held.finish({ same: 'computed', 'also-same': 'computed too', written: 'older' });
      expect(await running).toEqual(['computed', 'computed too', 'older']);
      const after = reads(runner);
      if (before && after) {
        // One batched check, not a GET per key.
        expect(after.mget - before.mget).toBe(1);
        expect(after.get - before.get).toBe(0);
      }
      expect(runner.getLocal('same')).toBe('computed');
      expect(runner.getLocal('also-same')).toBe('computed too');
      expect(await runner.get('written')).toBe('newer');
      const fresh = await open(prefix);
      expect(await fresh.getMany(['same', 'also-same', 'written'])).toEqual([
        'computed',
        'computed too',
        'newer',
      ]);
    });

    it('does not cache a key L2 held nothing of, before and after, over a write then delete both lost in the outage', async () => {
      const { open, killBus } = setup();
      const prefix = 'batch-written-deleted:';
      const { logger, resynced } = resyncWatcher();
      const runner = await open(prefix, { logger });
      const heard = hearing(runner);
      const writer = await open(prefix);
      await writer.set('same', 'old');
      await writer.expire('same');
      await heard(['set:same', 'exp:same']);
      const held = heldFactory();
      const running = runner.getOrSetMany(['cold', 'same'], held.factory);
      await held.started();
      await killBus();
      // Both land in L2 while the runner's bus is down: L2 holds nothing again, as the run saw it.
      await writer.set('cold', 'newer');
      await writer.delete('cold');
      await waitForResync(resynced);
      held.finish({ cold: 'older', same: 'computed' });
      expect(await running).toEqual(['older', 'computed']);
      // The factory may have read its source before the delete: nothing serves its result.
      expect(await runner.get('cold')).toBeUndefined();
      expect(await writer.get('cold')).toBeUndefined();
      expect(await (await open(prefix)).getMany(['cold', 'same'])).toEqual([undefined, 'computed']);
    });

    it('does not cache a key whose first L2 read failed over a delete the bus lost', async () => {
      const { open, killBus, stall } = setup();
      const prefix = 'batch-unread:';
      const { logger, resynced } = resyncWatcher();
      const runner = await open(prefix, { logger, operationTimeoutMs: STALLED_READ_DEADLINE_MS });
      const heard = hearing(runner);
      const writer = await open(prefix);
      await writer.set('deleted{b}', 'v1');
      await writer.set('kept{a}', 'old');
      await writer.expire('kept{a}');
      await heard(['set:deleted{b}', 'set:kept{a}', 'exp:kept{a}']);
      // The runner's read of `deleted` times out: it cannot tell what L2 held before its run.
      const stallEnded = await stall(`${prefix}v:deleted{b}`, STALL_MS);
      const held = heldFactory();
      const running = runner.getOrSetMany(['deleted{b}', 'kept{a}'], held.factory);
      await held.started();
      await stallEnded();
      await killBus();
      await writer.delete('deleted{b}');
      await waitForResync(resynced);
      held.finish({ 'deleted{b}': 'older', 'kept{a}': 'computed' });
      expect(await running).toEqual(['older', 'computed']);
      expect(await runner.get('deleted{b}')).toBeUndefined();
      expect(await (await open(prefix)).get('deleted{b}')).toBeUndefined();
      // On a Cluster the other key's master answered: that key's read, and its value, stand.
      if (name.includes('Cluster')) expect(runner.getLocal('kept{a}')).toBe('computed');
    });
  });
}

describeBatchReconnect('memory + Redis', single.skip !== undefined, singleNode);
describeBatchReconnect('memory + Redis Cluster (3 masters)', cluster.skip !== undefined, threeMasters);
