import { monitorRedis, type RedisMonitor, startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter, type RateLimiter } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { checkScript } from '../../src/stores/lua-script.js';
import { adjustScript } from '../../src/stores/redis-adjust.js';
import { defaultNamespace } from '../rule-namespace.js';

// ioredis follows MOVED and ASK itself (recommendedClusterOptions keep maxRedirections), sending
// the same command to the node the reply names. The expiry a call carries is in the clock of the
// master it was stamped for; the node it is redirected to must get one in its own clock (or none,
// when the store has not heard from it), or a clock ahead of the first master's skips a check its
// caller still waits for, and one behind runs it after its caller gave up. Real slot moves on a
// real 3-master Cluster: a slot reassigned behind the client's back (MOVED) and one being
// migrated (ASK); MONITOR on each master shows the expiry each send carried.

const { cluster, skip } = await startRedisClusterOrSkip(3);

/** EVALSHA sha numkeys key… expiry …: the expiry of one send seen by MONITOR. */
const expiryOf = (args: string[]) => Number(args[3 + Number(args[2])]);

describe.skipIf(skip !== undefined)('a Cluster call ioredis redirects by itself', () => {
  const prefix = 'redirect-expiry:';
  const admins = new Map<string, { redis: Redis; id: string }>();
  const seen = new Map<string, string[][]>();
  const monitors: RedisMonitor[] = [];
  let client: Cluster;
  let limiter: RateLimiter;

  const hashKeyOf = (key: string) => `${prefix}{${defaultNamespace([{ limit: 5, windowMs: 60_000 }])}${key}}`;
  const servingOf = (key: string) => client.slots[clusterSlot(hashKeyOf(key))]![0]!;
  /** A key named `label…` of a slot other than `not`'s, served by `node`. */
  const keyServedBy = (node: string, not: string[], label: string) => {
    for (let index = 0; ; index += 1) {
      const key = `${label}${index}`;
      const slot = clusterSlot(hashKeyOf(key));
      if (servingOf(key) === node && !not.some((other) => clusterSlot(hashKeyOf(other)) === slot)) return key;
    }
  };
  /** The sends of `key`'s calls each master saw (MONITOR lines arrive after the reply). */
  const sendsOf = (key: string, node: string, command = 'evalsha') =>
    (seen.get(node) ?? []).filter(
      (args) => args[0]?.toLowerCase() === command && args.includes(hashKeyOf(key)),
    );

  beforeAll(async () => {
    for (const node of cluster!.nodes) {
      const address = `${node.host}:${node.port}`;
      const redis = new Redis(node.port, node.host);
      await redis.script('LOAD', checkScript);
      await redis.script('LOAD', adjustScript);
      admins.set(address, { redis, id: String(await redis.cluster('MYID')) });
      // A raw MONITOR (testkit), not ioredis's monitor(): see monitorRedis.
      const monitor = await monitorRedis(node);
      monitor.on(({ args }) => {
        if (!seen.has(address)) seen.set(address, []);
        seen.get(address)!.push([...args]);
      });
      monitors.push(monitor);
    }
    client = new Cluster(cluster!.nodes, { ...recommendedClusterOptions, slotsRefreshInterval: 60_000 });
    client.on('error', () => {});
    await new Promise((resolve) => client.once('ready', resolve));
    // Every master's connection up (without a call of the store, which hears from none yet): a
    // redirected call then goes at once to its new node, as ioredis does in a running service,
    // instead of being refused for a connection still opening (which the store resends itself).
    await Promise.all(client.nodes('master').map((node) => node.ping()));
  });

  // Each test a new store: one that has heard from no master yet.
  beforeEach(async () => {
    await limiter?.close();
    limiter = createRateLimiter({
      store: new RedisStore({ client, prefix, functions: false }),
      limits: [{ limit: 5, windowMs: 60_000 }],
      failMode: 'closed',
      deadlineMs: 3_000,
      breaker: { consecutiveFailures: 1_000_000, minimumRps: 1_000_000 },
      localBlockCache: false,
    });
  });

  afterAll(async () => {
    await limiter?.close();
    client?.disconnect();
    for (const monitor of monitors) monitor.stop();
    for (const { redis } of admins.values()) redis.disconnect();
    await cluster?.stop();
  });

  /** Reassigns `key`'s slot to `to` on every node (an empty slot: no keys to move). */
  async function reassign(key: string, to: string) {
    const slot = clusterSlot(hashKeyOf(key));
    const target = admins.get(to)!;
    await target.redis.cluster('SETSLOT', slot, 'NODE', target.id);
    for (const [address, { redis }] of admins)
      if (address !== to) await redis.cluster('SETSLOT', slot, 'NODE', target.id);
  }

  /** Has the store hear from `node` (a check of a key it serves): its calls there carry an expiry. */
  async function hearFrom(node: string, label: string): Promise<string> {
    const key = keyServedBy(node, [], label);
    expect(await limiter.check(key)).toMatchObject({ source: 'store', allowed: true });
    expect(await limiter.check(key)).toMatchObject({ source: 'store', allowed: true });
    await vi.waitFor(() => expect(sendsOf(key, node)).toHaveLength(2));
    // The first call had none (nothing heard yet), the second one its clock's.
    expect(sendsOf(key, node).map(expiryOf)[1]).toBeGreaterThan(0);
    return key;
  }

  it("MOVED: the master it is resent to gets an expiry in its own clock, not the first master's", async () => {
    const [first, second] = [...admins.keys()];
    const learnt = await hearFrom(first!, 'heard-moved');
    const moved = keyServedBy(first!, [learnt], 'moved');
    await reassign(moved, second!);
    // The client's slot map still names the first master.
    expect(servingOf(moved)).toBe(first);

    expect(await limiter.check(moved)).toMatchObject({ source: 'store', allowed: true });
    // The first master answered MOVED (MONITOR does not show a redirected command), and ioredis
    // sent the call to the second: once.
    await vi.waitFor(() => expect(sendsOf(moved, second!)).toHaveLength(1));
    // The second master, not heard from: none (as a first call's), not the first master's.
    expect(expiryOf(sendsOf(moved, second!)[0]!)).toBe(0);
    // Heard from now: its own clock's from here on.
    await limiter.check(moved);
    await vi.waitFor(() => expect(sendsOf(moved, second!)).toHaveLength(2));
    expect(expiryOf(sendsOf(moved, second!)[1]!)).toBeGreaterThan(0);
  });

  it('ASK: the node it is asked of gets an expiry in its own clock', async () => {
    const [first, , third] = [...admins.keys()];
    const learnt = await hearFrom(first!, 'heard-asked');
    const asked = keyServedBy(first!, [learnt], 'asked');
    const slot = clusterSlot(hashKeyOf(asked));
    const source = admins.get(first!)!;
    const target = admins.get(third!)!;
    await target.redis.cluster('SETSLOT', slot, 'IMPORTING', source.id);
    await source.redis.cluster('SETSLOT', slot, 'MIGRATING', target.id);
    try {
      expect(await limiter.check(asked)).toMatchObject({ source: 'store', allowed: true });
      await vi.waitFor(() => expect(sendsOf(asked, third!)).toHaveLength(1));
      // The third master, not heard from (it served no call of this store before): none.
      expect(expiryOf(sendsOf(asked, third!)[0]!)).toBe(0);
    } finally {
      await target.redis.cluster('SETSLOT', slot, 'STABLE');
      await source.redis.cluster('SETSLOT', slot, 'STABLE');
    }
  });

  it("a refund ioredis sends on after a MOVED carries the new master's clock too", async () => {
    const [first, second] = [...admins.keys()];
    const learnt = await hearFrom(first!, 'heard-refund');
    const refunded = keyServedBy(first!, [learnt], 'refunded');
    await reassign(refunded, second!);
    expect(servingOf(refunded)).toBe(first);
    expect(await limiter.refund(refunded, 1)).toMatchObject({ source: 'store' });
    await vi.waitFor(() => expect(sendsOf(refunded, second!)).toHaveLength(1));
    expect(expiryOf(sendsOf(refunded, second!)[0]!)).toBe(0);
  });

  // The new master lacks the script: it answers the redirected EVALSHA with NOSCRIPT, and the
  // store sends the script itself (EVAL), straight to it (the MOVED updated the slot map). That
  // send too must carry the new master's clock, not the expiry first written for the old one.
  for (const operation of ['check', 'refund'] as const)
    it(`a ${operation} sent again as EVAL after a MOVED and NOSCRIPT carries the new master's clock`, async () => {
      const [first, second] = [...admins.keys()];
      const learnt = await hearFrom(first!, `heard-noscript-${operation}`);
      const moved = keyServedBy(first!, [learnt], `noscript-${operation}`);
      const newMaster = admins.get(second!)!.redis;
      await reassign(moved, second!);
      await newMaster.script('FLUSH');
      try {
        expect(servingOf(moved)).toBe(first);
        const result = operation === 'check' ? await limiter.check(moved) : await limiter.refund(moved, 1);
        expect(result).toMatchObject({ source: 'store' });
        await vi.waitFor(() => expect(sendsOf(moved, second!, 'eval')).toHaveLength(1));
        // Not heard from: none, as the redirected EVALSHA had.
        expect(expiryOf(sendsOf(moved, second!, 'evalsha')[0]!)).toBe(0);
        expect(expiryOf(sendsOf(moved, second!, 'eval')[0]!)).toBe(0);
      } finally {
        await newMaster.script('LOAD', checkScript);
        await newMaster.script('LOAD', adjustScript);
      }
    });
});
