import { defaultConsecutiveFailures } from '@noa/core';
import { recordingLogger, startRedisClusterOrSkip } from '@noa/testkit';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { eventually } from './helpers.js';
import { keySlot } from './key-slot.js';
import { settledSlotMasters, stallTolerantCluster } from './redis-server.js';

// Issue 10, loose end 1: the breaker on a 3-master Cluster with one master stalled (CLIENT PAUSE
// ALL: it takes connections and answers nothing). Each key's GET is its own breaker call, so a
// run of 10 reads that land on the stalled master (by chance at low traffic, or one getMany's
// keys there) opened the breaker for every key: the healthy masters' keys were then degraded
// too, and the PING probe that was to close it again went to one master picked at random
// (ioredis sends a keyless command to `getSampleInstance('master')`), the stalled one a third of
// the time.

const { cluster, skip } = await startRedisClusterOrSkip(3);
const prefix = 'breaker-one-master:';
/** Generous (2 noisy cores): a healthy master's GET never outlives it. */
const operationTimeoutMs = 200;

describe.skipIf(skip !== undefined)('one master of a 3-master Cluster stalled', () => {
  const clients: (Cluster | Redis)[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    for (const cache of caches) await cache.close();
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  const connect = (): Promise<Cluster> => stallTolerantCluster(cluster!.nodes, clients);

  /** A plain connection to the master at `hostPort`, for CLIENT PAUSE. */
  function admin(hostPort: string): Redis {
    const [host, port] = hostPort.split(':');
    const connection = new Redis(Number(port), host!);
    connection.on('error', () => {});
    clients.push(connection);
    return connection;
  }

  /**
   * `count` keys whose values the writer stored, per master ("host:port"): `keyPrefix` tells
   * them apart between cases. Each is read once by the reader, so each read is an L2 read.
   */
  async function keysByMaster(client: Cluster, keyPrefix: string, count: number) {
    // The slot map as the Cluster says it (the client's own may be mid-update): a bounded search.
    const masters = await settledSlotMasters(client);
    const byMaster = new Map<string, string[]>();
    for (
      let index = 0;
      [...byMaster.values()].filter((keys) => keys.length >= count).length < 3;
      index += 1
    ) {
      if (index === 100 * count) throw new Error(`no ${count} keys per master in ${index} tries`);
      const key = `${keyPrefix}${index}`;
      const master = masters[keySlot(`${prefix}v:${key}`)]!;
      const keys = byMaster.get(master) ?? [];
      if (keys.length < count) keys.push(key);
      byMaster.set(master, keys);
    }
    const writer = new Cache({ redis: client, prefix, bus: false });
    await writer.setMany([...byMaster.values()].flat().map((key) => ({ key, value: `v-${key}` })));
    await writer.close();
    return byMaster;
  }

  it('a run of reads on the stalled master does not open the breaker: the other masters’ keys are read from Redis', async () => {
    const client = await connect();
    const byMaster = await keysByMaster(client, 'run-', 60);
    const [stalled, ...healthy] = [...byMaster.keys()];
    const onStalled = byMaster.get(stalled!)!;
    const elsewhere = healthy.flatMap((master) => byMaster.get(master)!);
    const logger = recordingLogger();
    const reader = new Cache({ redis: client, prefix, bus: false, logger, operationTimeoutMs });
    caches.push(reader);
    await reader.ready();
    // Connections and slots warmed: every master answers.
    for (const master of byMaster.keys()) await reader.get(`warm-${master}`);
    const results = { stalled: { redis: 0, degraded: 0 }, elsewhere: { redis: 0, degraded: 0 } };
    const read = async (where: 'stalled' | 'elsewhere', key: string) => {
      const value = await reader.get(key);
      results[where][value === `v-${key}` ? 'redis' : 'degraded'] += 1;
    };
    const pausing = admin(stalled!);
    await pausing.call('CLIENT', 'PAUSE', '10000', 'ALL');
    let stalledNext = 0;
    let elsewhereNext = 0;
    // A run of twice the breaker's run on the stalled master (one getMany's keys there, or a
    // run by chance), all timing out together.
    await Promise.all(
      Array.from({ length: 2 * defaultConsecutiveFailures }, () =>
        read('stalled', onStalled[stalledNext++]!),
      ),
    );
    // Then the other masters' keys, one at a time, then both interleaved.
    for (let index = 0; index < 20; index += 1) await read('elsewhere', elsewhere[elsewhereNext++]!);
    for (let index = 0; index < 5; index += 1) {
      await read('stalled', onStalled[stalledNext++]!);
      await read('elsewhere', elsewhere[elsewhereNext++]!);
    }
    // Another run, with the other masters' keys read meanwhile.
    await Promise.all([
      ...Array.from({ length: 2 * defaultConsecutiveFailures }, () =>
        read('stalled', onStalled[stalledNext++]!),
      ),
      ...Array.from({ length: 20 }, () => read('elsewhere', elsewhere[elsewhereNext++]!)),
    ]);
    const stats = reader.stats();
    await pausing.ping(); // answered once the pause is over
    console.log(
      'one master stalled: reads',
      JSON.stringify(results),
      'degraded',
      JSON.stringify(stats.degraded),
    );
    expect(results.elsewhere).toEqual({ redis: 45, degraded: 0 });
    expect(results.stalled).toEqual({ redis: 0, degraded: 45 });
    expect(stats.degraded.breakerOpen).toBe(0);
    expect(logger.messages('warn')).not.toContain('redis circuit breaker open');
    expect(stats.l2).toBe('closed');
  });

  it('every master stalled: the breaker opens; once two answer again (the third still stalled) it closes and their keys are read from Redis', async () => {
    const client = await connect();
    const byMaster = await keysByMaster(client, 'all-', 200);
    const [stalled, ...healthy] = [...byMaster.keys()];
    const onStalled = byMaster.get(stalled!)!;
    const elsewhere = healthy.flatMap((master) => byMaster.get(master)!);
    const logger = recordingLogger();
    const reader = new Cache({
      redis: client,
      prefix,
      bus: false,
      logger,
      operationTimeoutMs,
      breaker: { halfOpenAfterMs: 100 },
    });
    caches.push(reader);
    await reader.ready();
    for (const master of byMaster.keys()) await reader.get(`warm-${master}`);
    const pausers = new Map([...byMaster.keys()].map((master) => [master, admin(master)]));
    // The stalled master for long; the others for long enough that the breaker opens meanwhile.
    await pausers.get(stalled!)!.call('CLIENT', 'PAUSE', '10000', 'ALL');
    await Promise.all(healthy.map((master) => pausers.get(master)!.call('CLIENT', 'PAUSE', '4000', 'ALL')));
    let stalledNext = 0;
    let elsewhereNext = 0;
    // Reads of every master's keys, a few at a time, until the breaker opens (bounded).
    const opened = await eventually(async () => {
      await Promise.all([reader.get(onStalled[stalledNext++]!), reader.get(elsewhere[elsewhereNext++]!)]);
      return reader.stats().l2 !== 'closed';
    }, 15_000);
    expect(opened).toBe(true);
    expect(logger.messages('warn')).toContain('redis circuit breaker open');
    // The other masters answer again (their pauses ended).
    await Promise.all(healthy.map((master) => pausers.get(master)!.ping()));
    // Reads of the other masters' keys, one at a time: degraded until the breaker closes (a probe
    // answered), then each read from Redis; bounded by a count, not a time.
    const after = { redis: 0, degraded: 0 };
    let readsBeforeBack = 0;
    for (let index = 0; index < 150 && after.redis < 20; index += 1) {
      const key = elsewhere[elsewhereNext++]!;
      const value = await reader.get(key);
      if (value === `v-${key}`) after.redis += 1;
      else {
        after.degraded += 1;
        if (after.redis === 0) readsBeforeBack += 1;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    // The stalled master's keys still fail, and do not open the breaker again.
    const stalledAfter = await Promise.all(
      Array.from({ length: 2 * defaultConsecutiveFailures }, () => reader.get(onStalled[stalledNext++]!)),
    );
    const healthyAfter = [];
    for (let index = 0; index < 10; index += 1) {
      const key = elsewhere[elsewhereNext++]!;
      healthyAfter.push((await reader.get(key)) === `v-${key}`);
    }
    console.log(
      'every master stalled, then two back:',
      JSON.stringify({
        after,
        readsBeforeBack,
        opens: logger.messages('warn').filter((m) => m === 'redis circuit breaker open').length,
      }),
    );
    expect(after.redis).toBe(20);
    // Degraded only while the breaker was open: once a read came back from Redis, all did.
    expect(after.degraded).toBe(readsBeforeBack);
    expect(stalledAfter.every((value) => value === undefined)).toBe(true);
    expect(healthyAfter.every(Boolean)).toBe(true);
    expect(reader.stats().l2).toBe('closed');
    await pausers.get(stalled!)!.ping();
  });
});
