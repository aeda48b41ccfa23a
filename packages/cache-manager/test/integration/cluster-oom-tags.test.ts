import { clusterMasterPortOf, commandStat, generousDeadlineMs, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { eventually, findMemorySplit } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

const { installed: hasRedisServer, client: cluster } = usePrivateCluster(
  'the Cluster out-of-memory tag test',
);

/** The port of the master serving `key`. */
const masterOf = (key: string) => clusterMasterPortOf(cluster(), key);

/**
 * On a Cluster a value and its tag set live in different slots, often on different masters: a
 * master out of memory (`maxmemory` reached, `noeviction`) refuses the SADD of the tag set while
 * the value's master took the value. Left so, the value was unnamed by its tag set, missed by
 * `deleteByTag` and served by every instance until its TTL. A plain `set` (SET, then SADD) and a
 * factory run's compare-and-set write (`replace-if-unchanged.lua`, then SADD; getOrSet and
 * getOrSetMany) both leave no such value: it is deleted, a miss.
 */
describe.skipIf(!hasRedisServer)('tagged writes on a Cluster whose tag set master is out of memory', () => {
  const admins: Redis[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const admin of admins) admin.disconnect();
  });

  it('leave no value their tag set does not name (set, getOrSet, getOrSetMany)', async () => {
    const prefix = `${uniqueName('cm_oom_cluster')}:`;
    const tagMaster = await masterOf(`${prefix}__tag:t`);
    // Keys whose value lives on another master than the tag set (and whose lease does too, so
    // that getOrSet runs under its lease as usual).
    const keys: string[] = [];
    for (let index = 0; keys.length < 3; index += 1) {
      const key = `k${index}`;
      const [valueMaster, leaseMaster] = [
        await masterOf(`${prefix}v:${key}`),
        await masterOf(`${prefix}__lease:${key}`),
      ];
      if (valueMaster !== tagMaster && leaseMaster !== tagMaster) keys.push(key);
    }
    const [plain, computed, many] = keys as [string, string, string];
    const admin = new Redis(tagMaster, '127.0.0.1');
    admins.push(admin);
    // Breaker kept closed: every write is sent.
    const options = {
      redis: cluster(),
      prefix,
      bus: false as const,
      breaker: { consecutiveFailures: 1_000 },
      operationTimeoutMs: generousDeadlineMs,
    };
    const writer = new Cache(options);
    caches.push(writer);
    await writer.ready();
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    let computedValue: unknown;
    let manyValues: unknown;
    try {
      // The tag set's master refuses to grow it; the values' masters take them.
      expect(
        await admin.sadd(`{${prefix}__tag:t}probe`, 'x').catch((error: unknown) => String(error)),
      ).toMatch(/OOM/);
      await writer.set(plain, 'plain value', { tags: ['t'] });
      computedValue = await writer.getOrSet(computed, () => 'computed value', { tags: ['t'] });
      manyValues = await writer.getOrSetMany([many], (missing) => missing.map(() => 'many value'), {
        tags: ['t'],
      });
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    expect(computedValue).toBe('computed value');
    expect(manyValues).toEqual(['many value']);
    expect(await admin.smembers(`${prefix}__tag:t`)).toEqual([]); // the SADDs were refused
    await writer.deleteByTag('t');
    // The deletes of values left unnamed are sent without waiting for them: wait for the cluster
    // to have run them (a fixed 100 ms assumed it had).
    const gone = async () =>
      (await Promise.all([plain, computed, many].map((key) => cluster().exists(`${prefix}v:${key}`)))).every(
        (found) => found === 0,
      );
    await eventually(gone);
    const reader = new Cache(options);
    caches.push(reader);
    await reader.ready();
    expect(await reader.getMany([plain, computed, many])).toEqual([undefined, undefined, undefined]);
    expect(await cluster().exists(`${prefix}v:${plain}`)).toBe(0);
    expect(await cluster().exists(`${prefix}v:${computed}`)).toBe(0);
    expect(await cluster().exists(`${prefix}v:${many}`)).toBe(0);
  });

  it('with value and tag set on one master (a hash-tagged prefix), a set leaves none either', async () => {
    // Every key of the prefix in one slot: the SET must run and the SADD behind it be refused on
    // the same master, a margin of about 1 KB below maxmemory (the SET's arguments are counted
    // while queued): found by bisection, as on a single node. A factory run's compare-and-set
    // write has no such margin on one master without other traffic (bisected to 60 bytes: the
    // script refused, or script and SADD both taken): its SADD goes out once the script answered,
    // when the memory its arguments held is free again. The test above covers that path.
    const prefix = `{${uniqueName('cm_oom_slot')}}:`;
    const admin = new Redis(await masterOf(`${prefix}__tag:t`), '127.0.0.1');
    admins.push(admin);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    const options = {
      redis: cluster(),
      prefix,
      bus: false as const,
      breaker: { consecutiveFailures: 1_000 },
      operationTimeoutMs: generousDeadlineMs,
      compression: { algorithm: 'none' as const },
    };
    const writer = new Cache(options);
    caches.push(writer);
    await writer.ready();
    const big = 'x'.repeat(200_000);
    const stat = async (command: string) => {
      const { calls, rejected, failed } = await commandStat(admin, command);
      return { calls, refused: rejected + failed };
    };
    /** Finds a maxmemory at which one `write` ran its `command` and had its SADD refused; the keys written. */
    const splitWrites = async (label: string, command: string, write: (key: string) => Promise<unknown>) => {
      const written: string[] = [];
      const { split } = await findMemorySplit(async (margin, index) => {
        const key = `${label}-${index}`;
        written.push(key);
        await admin.config('SET', 'maxmemory', '0');
        const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))![1]);
        const [before, sadd] = [await stat(command), await stat('sadd')];
        await admin.config('SET', 'maxmemory', String(used + margin));
        try {
          await write(key);
        } finally {
          await admin.config('SET', 'maxmemory', '0');
        }
        const [after, saddAfter] = [await stat(command), await stat('sadd')];
        const ran = after.calls > before.calls && after.refused === before.refused;
        if (!ran) return 'refused';
        return saddAfter.refused > sadd.refused ? 'split' : 'ran'; // 'split': the case under test
      });
      if (!split) throw new Error(`no maxmemory let the ${command} of ${label} run and refused its SADD`);
      return written;
    };
    const plain = await splitWrites('plain', 'set', (key) => writer.set(key, big, { tags: ['t'] }));
    await writer.deleteByTag('t');
    // The deletes of values left unnamed are not waited for by deleteByTag: wait for Redis to
    // have run them (a fixed 100 ms assumed it had).
    await eventually(async () => (await admin.keys(`${prefix}v:*`)).length === 0);
    expect(await admin.keys(`${prefix}v:*`)).toEqual([]);
    const reader = new Cache(options);
    caches.push(reader);
    await reader.ready();
    const read = await reader.getMany(plain);
    expect(read.filter((value) => value !== undefined)).toEqual([]);
  });
});
