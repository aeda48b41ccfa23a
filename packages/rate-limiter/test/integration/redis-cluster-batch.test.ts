import { once } from 'node:events';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createRateLimiter, type LimitPolicy } from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import type { ConsumeOutcome, ConsumeRequest } from '../../src/stores/store.js';
import { defaultNamespace } from '../rule-namespace.js';
import { migrateSlotKeys, scriptCalls } from './redis-stats.js';

// Batches on a real 3-master Cluster (`consumeMany`: per-slot script calls, one write per
// master) decide exactly as one check at a time would, also while slots move between masters.

const { cluster, skip } = await startRedisClusterOrSkip(3);

// Windows of ~35 years: no window starts mid-test, so counts are exact and runs comparable.
const windowMs = 2 ** 40;
const fixed: LimitPolicy[] = [{ name: 'f', algorithm: 'fixed-window', limit: 5, windowMs }];
const mixed: LimitPolicy[] = [
  { name: 'log', algorithm: 'sliding-log', limit: 4, windowMs },
  { name: 'bucket', algorithm: 'token-bucket', limit: 6, windowMs, burst: 6 },
];
const big: LimitPolicy[] = [{ name: 'big', algorithm: 'fixed-window', limit: 1_000_000, windowMs }];

/** Keys over many slots (hence all masters), plus two groups that share a slot by a hash tag. */
const spreadKeys = Array.from({ length: 60 }, (_, index) => `user-${index}`);
const taggedKeys = ['{team-a}', '{team-b}'].flatMap((tag) =>
  Array.from({ length: 8 }, (_, index) => `${tag}:user-${index}`),
);

/** One round: every key once, alternating rules and numbers of requests (costs) per key. */
function round(keys: string[]): ConsumeRequest[] {
  return keys.map((key, index) => ({
    key,
    limits: index % 3 === 2 ? mixed : fixed,
    costs: index % 4 === 0 ? [2, 1] : index % 4 === 1 ? [1, 1, 1] : [1],
  }));
}

/** What a caller can see of an outcome (reset times depend on when each check ran). */
const visible = (outcomes: ConsumeOutcome[]) =>
  outcomes.map((outcome) => ({
    blocked: outcome.blockedMs > 0,
    decisions: outcome.decisions.map(({ allowed, remaining }) => ({ allowed, remaining })),
  }));

describe.skipIf(skip !== undefined)('RedisStore batches on a 3-master Redis Cluster', () => {
  const clients: Cluster[] = [];
  const admins = (cluster?.nodes ?? []).map(({ host, port }) => {
    const admin = new Redis(port, host, { lazyConnect: true });
    // The last test stops a master; its admin connection then retries in the background.
    admin.on('error', () => {});
    return admin;
  });
  let prefixes = 0;

  async function connect(): Promise<Cluster> {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    // With the offline queue off, commands before the first `ready` fail (the store waits itself).
    await once(client, 'ready');
    return client;
  }
  const nextPrefix = () => {
    prefixes += 1;
    return `batch-${prefixes}:`;
  };
  /** Points counted on `key` so far under `limits` (a zero-cost check). */
  async function counted(store: RedisStore, key: string, limits: LimitPolicy[]): Promise<number> {
    const [outcome] = await store.consume(key, limits, [0], undefined);
    const decision = outcome!.decisions[0]!;
    return decision.limit - decision.remaining;
  }
  async function nodeIdOf(admin: Redis): Promise<string> {
    return (await admin.cluster('MYID')) as string;
  }
  /** The admin connection of the master that serves `slot`, by asking the servers themselves. */
  async function masterOf(slot: number): Promise<Redis> {
    const ranges = await admins[0]!.cluster('SLOTS');
    const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
    return admins.find((admin) => admin.options.port === range[2]![1])!;
  }

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    for (const admin of admins) admin.disconnect();
    await cluster?.stop();
  });

  it('a batch over many slots and every master decides as one check at a time would', async () => {
    const client = await connect();
    const batched = new RedisStore({ client, prefix: nextPrefix() });
    const single = new RedisStore({ client, prefix: nextPrefix() });
    const keys = [...spreadKeys, ...taggedKeys];

    // The batch spans all three masters, and each tagged group sits in one slot.
    const slotOf = (key: string) => clusterSlot(`x{${key}}`);
    const masters = new Set(keys.map((key) => client.slots[slotOf(key)]![0]));
    expect(masters.size).toBe(3);
    for (const tag of ['{team-a}', '{team-b}']) {
      const slots = new Set(
        await Promise.all(
          taggedKeys
            .filter((key) => key.startsWith(tag))
            .map((key) => admins[0]!.cluster('KEYSLOT', `x{${key}}`)),
        ),
      );
      expect(slots.size).toBe(1);
    }

    // Rounds until every key has been refused at least once.
    for (let index = 0; index < 4; index += 1) {
      const requests = round(keys);
      const together = await batched.consumeMany(requests, undefined);
      const oneByOne: ConsumeOutcome[][] = [];
      for (const { key, limits, costs } of requests)
        oneByOne.push(await single.consume(key, limits, costs, undefined));
      expect(together.map(visible)).toEqual(oneByOne.map(visible));
    }
    for (const [index, key] of keys.entries()) {
      const limits = index % 3 === 2 ? mixed : fixed;
      expect(await counted(batched, key, limits)).toBe(await counted(single, key, limits));
    }
  });

  it('keys that share a slot share one script call', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    const keys = [...spreadKeys, ...taggedKeys];
    const slots = new Set(keys.map((key) => clusterSlot(`${prefix}{${key}}`)));
    await store.consume('warm-up', big, [0], undefined);
    await Promise.all(admins.map((admin) => admin.config('RESETSTAT')));
    await store.consumeMany(
      keys.map((key) => ({ key, limits: big, costs: [1] })),
      undefined,
    );
    // One call per distinct slot: the 16 tagged keys take 2 calls, not 16.
    expect(await scriptCalls(...admins)).toBe(slots.size);
    expect(slots.size).toBeLessThanOrEqual(spreadKeys.length + 2);
  });

  it('a batch with slots missing from the client slot map still counts each request once', async () => {
    const client = await connect();
    const store = new RedisStore({ client, prefix: nextPrefix() });
    const keys = [...spreadKeys, ...taggedKeys];
    // As before the first slot refresh, or while a failover leaves slots unassigned: half the
    // slots are unknown to the client, so their calls go out alone and ioredis finds the master.
    for (let slot = 0; slot < 16_384; slot += 2) delete client.slots[slot];
    const outcomes = await store.consumeMany(
      keys.map((key) => ({ key, limits: big, costs: [1] })),
      undefined,
    );
    expect(outcomes.every(([outcome]) => outcome!.decisions[0]!.allowed)).toBe(true);
    for (const key of keys) expect(await counted(store, key, big)).toBe(1);
  });

  it.each([
    ['scripts', false, 'SCRIPT'],
    ['functions', true, 'FUNCTION'],
  ] as const)(
    '%s: after %s FLUSH on every master, a batch loads the code and counts each request once',
    async (_, functions, flushed) => {
      const client = await connect();
      const store = new RedisStore({ client, prefix: nextPrefix(), functions });
      const keys = [...spreadKeys, ...taggedKeys];
      // Every master holds the code first, so that the flush is what the batch must recover from.
      await store.consumeMany(
        keys.map((key) => ({ key, limits: big, costs: [0] })),
        undefined,
      );
      await Promise.all(admins.map((admin) => admin.call(flushed, 'FLUSH')));
      const requests = keys.map((key) => ({ key, limits: big, costs: [1, 1] }));
      const outcomes = await store.consumeMany(requests, undefined);
      expect(outcomes.every((pair) => pair.every((outcome) => outcome.decisions[0]!.allowed))).toBe(true);
      for (const key of keys) expect(await counted(store, key, big)).toBe(2);
      expect(store.usesFunctions).toBe(functions);
    },
  );

  it('counts each request once while a slot migrates (ASK) and after it moved (MOVED)', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    // The tagged group `{mover}` is the slot that moves; the other keys keep their masters, so
    // each master's write carries calls that succeed next to those redirected.
    const movers = Array.from({ length: 6 }, (_, index) => `{mover}:user-${index}`);
    const keys = [...spreadKeys, ...movers];
    const slot = clusterSlot(`${prefix}{${movers[0]}}`);
    const source = await masterOf(slot);
    const target = admins.find((admin) => admin !== source)!;
    const targetId = await nodeIdOf(target);
    const batch = () =>
      store.consumeMany(
        keys.map((key) => ({ key, limits: big, costs: [1] })),
        undefined,
      );
    const staleMap = client.slots[slot]!.join(',');

    await batch();
    // Migrating: the slot's keys are already on the target, the slot not yet handed over, so
    // the source answers ASK for them.
    const inSlot = await migrateSlotKeys(source, target, slot);
    expect(inSlot.length).toBe(movers.length);
    await batch();
    // Moved: every master now says the target serves the slot; the client still maps it to the
    // source, which answers MOVED.
    for (const admin of admins) await admin.cluster('SETSLOT', slot, 'NODE', targetId);
    expect(client.slots[slot]!.join(',')).toBe(staleMap);
    await batch();
    await batch();

    for (const key of keys) expect(await counted(store, key, big)).toBe(4);
    expect(client.slots[slot]![0]).toBe(`127.0.0.1:${target.options.port}`);
  });

  it('with a master gone, checks of its keys get the fail mode within the deadline, the others the store', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    // The dead master's keys alone: each answered by the fail mode at this deadline.
    const limiter = createRateLimiter({
      store,
      limits: [{ name: 'default', limit: 1_000_000, windowMs }],
      failMode: 'open',
      deadlineMs: 100,
      breaker: { consecutiveFailures: 1_000_000 },
      localBlockCache: false,
    });
    // Batches mixing every master: what they assert is that a live master's keys get the store's
    // answer, so the deadline leaves a loaded machine time for that reply (with 100 ms, under a
    // load of 13 to 23, a live master's reply came late in about 1 batch of 20: its keys got the
    // fail mode). The dead master's keys still get the fail mode by it, long before ioredis's ~2 s.
    const mixedDeadlineMs = 1_000;
    const mixed = createRateLimiter({
      store,
      limits: [{ name: 'default', limit: 1_000_000, windowMs }],
      failMode: 'open',
      deadlineMs: mixedDeadlineMs,
      breaker: { consecutiveFailures: 1_000_000 },
      localBlockCache: false,
    });
    // The limiter's store key of `key`: its default rule.
    const namespace = defaultNamespace([{ limit: 1_000_000, windowMs }]);
    const slotOf = (key: string) => clusterSlot(`${prefix}{${namespace}${key}}`);
    const limits = [{ name: 'default', algorithm: 'fixed-window' as const, limit: 1_000_000, windowMs }];
    // Connections and scripts warmed up on every master, without a deadline.
    await store.consumeMany(
      spreadKeys.map((key) => ({ key: `${namespace}${key}`, limits, costs: [0] })),
      undefined,
    );
    const dead = admins[2]!;
    const deadNode = `127.0.0.1:${dead.options.port}`;
    const onDead = spreadKeys.filter((key) => client.slots[slotOf(key)]![0] === deadNode);
    expect(onDead.length).toBeGreaterThan(0);
    // The live masters keep serving their slots once the others mark the dead one failed (after
    // the 2 s node timeout; by default the whole cluster then refuses every command, CLUSTERDOWN):
    // the checks below may take longer than that on a loaded machine.
    await Promise.all(
      admins
        .filter((admin) => admin !== dead)
        .map((admin) => admin.config('SET', 'cluster-require-full-coverage', 'no')),
    );
    // A connection that does not reconnect: SHUTDOWN's reply is the connection closing.
    const killer = new Redis(dead.options.port!, '127.0.0.1', { retryStrategy: () => null });
    killer.on('error', () => {});
    await killer.shutdown('NOSAVE').catch(() => {});

    // ioredis retries a command bound for a lost master for about 2 s (redirections to it and
    // reconnection attempts); the deadline answers the caller long before, and a retry that
    // lands later carries its expiry. Batches mixing every master first: each key is answered
    // by its own master's reply, so only the dead master's keys get the fail mode. Then dead
    // keys alone. Bounds are the deadline and a generous slack: the point is "not seconds".
    const started = performance.now();
    const together = await Promise.all(spreadKeys.map((key) => mixed.check(key)));
    expect(performance.now() - started).toBeLessThan(mixedDeadlineMs + 1_000);
    for (const [index, key] of spreadKeys.entries())
      expect(together[index]!.source).toBe(onDead.includes(key) ? 'fail-mode' : 'store');
    // With the default breaker too: batches that reach the live masters keep it closed, so their
    // keys stay on the store however many batches the dead master fails.
    const defaultBreaker = createRateLimiter({
      store,
      limits: [{ name: 'default', limit: 1_000_000, windowMs }],
      failMode: 'open',
      deadlineMs: mixedDeadlineMs,
      localBlockCache: false,
    });
    for (let round = 0; round < 5; round += 1) {
      const results = await Promise.all(spreadKeys.map((key) => defaultBreaker.check(key)));
      for (const [index, key] of spreadKeys.entries())
        expect(results[index]!.source).toBe(onDead.includes(key) ? 'fail-mode' : 'store');
    }
    expect(defaultBreaker.fallbackActive).toBe(false);
    await defaultBreaker.close();
    for (const key of onDead.slice(0, 3)) {
      const alone = performance.now();
      const result = await limiter.check(key);
      expect(performance.now() - alone).toBeLessThan(100 + 900);
      expect(result.source).toBe('fail-mode');
      expect(result.allowed).toBe(true);
    }
    await mixed.close();
    await limiter.close();
  });
});
