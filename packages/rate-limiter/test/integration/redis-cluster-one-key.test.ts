import { once } from 'node:events';
import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AlgorithmName,
  createRateLimiter,
  type LimitPolicy,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../../src/redis.js';
import { clusterSlot } from '../../src/stores/cluster-slot.js';
import { checkScript, replyValues } from '../../src/stores/lua-script.js';
import { defaultNamespace } from '../rule-namespace.js';
import { migrateSlotKeys, scriptCalls } from './redis-stats.js';

// The limiter on a real 3-master Cluster, where a tick's keys rarely share a slot: each key is
// its own call (the one-key short form when it has one limit and one cost), sent while the
// masters' connections are corked. Decisions match the memory store's exactly, also with keys
// that share a slot by a hash tag, and each request counts once while a slot moves.

const { cluster, skip } = await startRedisClusterOrSkip(3);

// Windows of ~35 years: no window starts and no bucket refills mid-test, so counts are exact
// and the memory store decides alike.
const windowMs = 2 ** 40;

/** Keys over many slots (hence all masters), plus two groups that share a slot by a hash tag. */
const spreadKeys = Array.from({ length: 48 }, (_, index) => `user-${index}`);
const taggedKeys = ['{team-a}', '{team-b}'].flatMap((tag) =>
  Array.from({ length: 6 }, (_, index) => `${tag}:user-${index}`),
);

/** What a caller can see of a result that does not depend on when it ran. */
const visible = (result: RateLimitResult) => ({
  allowed: result.allowed,
  outcome: result.outcome,
  remaining: result.remaining,
});

describe.skipIf(skip !== undefined)('the limiter on a 3-master Redis Cluster, one call per key', () => {
  const clients: Cluster[] = [];
  const admins = (cluster?.nodes ?? []).map(({ host, port }) => new Redis(port, host, { lazyConnect: true }));
  let prefixes = 0;

  async function connect(): Promise<Cluster> {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    await once(client, 'ready');
    return client;
  }
  const nextPrefix = () => {
    prefixes += 1;
    return `one-${prefixes}:`;
  };
  /** The namespace of the limiter's default rule of one `algorithm` limit of `windowMs` (any limit). */
  const namespaceOf = (algorithm: AlgorithmName = 'fixed-window') =>
    defaultNamespace([{ algorithm, limit: 1, windowMs }]);
  /** The store key (hash tag included) of the limiter's default rule for `key`. */
  const hashKeyOf = (prefix: string, key: string, algorithm?: AlgorithmName) =>
    `${prefix}{${namespaceOf(algorithm)}${key}}`;
  /** Points counted on the default rule's `key` (a zero-cost check). */
  async function counted(store: RedisStore, key: string, limits: LimitPolicy[]): Promise<number> {
    const [outcome] = await store.consume(
      `${namespaceOf(limits[0]!.algorithm)}${key}`,
      limits,
      [0],
      undefined,
    );
    const decision = outcome!.decisions[0]!;
    return decision.limit - decision.remaining;
  }
  async function masterOf(slot: number): Promise<Redis> {
    const ranges = await admins[0]!.cluster('SLOTS');
    const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
    return admins.find((admin) => admin.options.port === range[2]![1])!;
  }
  /** `keys` with at most one per slot, so that a tick of them is one call per key. */
  const oneKeyPerSlot = (prefix: string, keys: string[]) => {
    const seen = new Set<number>();
    return keys.filter((key) => {
      const slot = clusterSlot(hashKeyOf(prefix, key));
      if (seen.has(slot)) return false;
      seen.add(slot);
      return true;
    });
  };
  const noneCorked = (client: Cluster) =>
    client.nodes('master').every((master) => (master.stream?.writableCorked ?? 0) === 0);

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    for (const admin of admins) admin.disconnect();
    await cluster?.stop();
  });

  it.each<AlgorithmName>(['fixed-window', 'sliding-window', 'token-bucket', 'leaky-bucket', 'sliding-log'])(
    '%s: every key admitted exactly its limit, each decision as the memory store makes it',
    async (algorithm) => {
      const client = await connect();
      const prefix = nextPrefix();
      const limits = [{ algorithm, limit: 3, windowMs }];
      const store = new RedisStore({ client, prefix });
      const onCluster = createRateLimiter({ store, limits, localBlockCache: false, deadlineMs: 2_000 });
      const inMemory = createRateLimiter({ limits, localBlockCache: false });
      const keys = [...spreadKeys, ...taggedKeys];
      // The keys span all three masters, and each tag's keys share one slot.
      const masters = new Set(
        keys.map((key) => client.slots[clusterSlot(hashKeyOf(prefix, key, algorithm))]![0]),
      );
      expect(masters.size).toBe(3);
      expect(new Set(taggedKeys.map((key) => clusterSlot(hashKeyOf(prefix, key, algorithm)))).size).toBe(2);

      // Each round checks every key once, all in one tick: the limiter sends them in batches.
      const admitted = new Map(keys.map((key) => [key, 0]));
      for (let round = 0; round < 5; round += 1) {
        const results = await Promise.all(keys.map((key) => onCluster.check(key)));
        const expected = await Promise.all(keys.map((key) => inMemory.check(key)));
        for (const [index, result] of results.entries()) {
          expect(result.source).toBe('store');
          if (result.allowed) admitted.set(keys[index]!, admitted.get(keys[index]!)! + 1);
        }
        expect(results.map(visible)).toEqual(expected.map(visible));
      }
      for (const key of keys) {
        expect(admitted.get(key)).toBe(3);
        expect(await counted(store, key, [{ name: 'default', algorithm, limit: 3, windowMs }])).toBe(3);
      }
      expect(noneCorked(client)).toBe(true);
      await onCluster.close();
      await inMemory.close();
    },
  );

  it('a one-key call replies one string of its nine numbers (one value for ioredis to decode, not nine)', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    const limiter = createRateLimiter({ store, limits: [{ limit: 5, windowMs }], localBlockCache: false });
    const hashKey = hashKeyOf(prefix, 'shape');
    await limiter.check('shape');
    // The script itself, in its short form (expiry, algorithm, limit, window, burst, queue, cost),
    // as the store sends it: a second request of the key.
    const reply = await client.eval(checkScript, 1, hashKey, 0, 1, 5, windowMs, 5, 0, 1);
    expect(typeof reply).toBe('string');
    const values = replyValues(reply as string)!;
    expect(values).toHaveLength(9);
    // Ran, not blocked, allowed, 3 of 5 left; no retry or delay.
    expect(values.slice(1, 5)).toEqual([1, 0, 1, 3]);
    expect(values.slice(6, 8)).toEqual([0, 0]);
    expect(values[0]).toBeGreaterThan(1_700_000_000_000);
    // The store reads it: the limiter's next check sees the third request.
    expect((await limiter.check('shape')).remaining).toBe(2);
    await limiter.close();
  });

  it("a new client's first tick reaches every master: none of its checks fails for a master still connecting", async () => {
    // Both a client used at once and one already ready: masters connect lazily, and a command
    // for a master whose connection is still being made fails at once (never sent).
    for (const waitForReady of [false, true]) {
      const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
      client.on('error', () => {});
      clients.push(client);
      if (waitForReady) await once(client, 'ready');
      const limiter = createRateLimiter({
        store: new RedisStore({ client, prefix: nextPrefix() }),
        limits: [{ limit: 5, windowMs }],
        failMode: 'closed',
        deadlineMs: 5_000,
        localBlockCache: false,
      });
      const results = await Promise.all(spreadKeys.map((key) => limiter.check(key)));
      expect(results.filter((result) => result.source !== 'store').map((result) => result.key)).toEqual([]);
      await limiter.close();
    }
  });

  it('a batch of keys in distinct slots makes one call per key, and leaves no connection corked', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    const limits: LimitPolicy[] = [{ name: 'default', algorithm: 'fixed-window', limit: 10, windowMs }];
    const keys = oneKeyPerSlot(prefix, spreadKeys);
    const batch = (cost: number) =>
      Promise.all(
        store.consumeEach!(
          keys.map((key) => ({ key: `${namespaceOf()}${key}`, limits, costs: [cost] })),
          undefined,
        ),
      );
    // Every master loads the code first, so that only the batch's own calls are counted.
    await batch(0);
    await Promise.all(admins.map((admin) => admin.config('RESETSTAT')));
    const outcomes = await batch(1);
    expect(outcomes.map(([outcome]) => outcome!.decisions[0]!.remaining)).toEqual(keys.map(() => 9));
    expect(await scriptCalls(...admins)).toBe(keys.length);
    expect(noneCorked(client)).toBe(true);
  });

  /** A store on a new Cluster client that has not connected yet, and one fixed window of 10. */
  function unconnectedStore() {
    const client = new Cluster(cluster!.nodes, recommendedClusterOptions);
    client.on('error', () => {});
    clients.push(client);
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    const limits: LimitPolicy[] = [{ name: 'default', algorithm: 'fixed-window', limit: 10, windowMs }];
    return { client, prefix, store, limits };
  }

  it('a batch sent before the first connection waits for it, then counts once and uncorks', async () => {
    const { client, prefix, store, limits } = unconnectedStore();
    const keys = oneKeyPerSlot(prefix, spreadKeys);
    expect(client.status).not.toBe('ready');
    const outcomes = await Promise.all(
      store.consumeEach!(
        keys.map((key) => ({ key: `${namespaceOf()}${key}`, limits, costs: [1] })),
        undefined,
        { deadlineMs: 5_000 },
      ),
    );
    expect(outcomes.every(([outcome]) => outcome!.decisions[0]!.allowed)).toBe(true);
    for (const key of keys) expect(await counted(store, key, limits)).toBe(1);
    expect(noneCorked(client)).toBe(true);
  });

  it('calls held for a master that stays connecting leave at their deadline unsent, without piling listeners on it', async () => {
    const { client, prefix, store, limits } = unconnectedStore();
    await once(client, 'ready');
    // A master this client has not connected yet (it connected one node for the slots).
    const idle = client.nodes('master').find((master) => master.status === 'wait')!;
    const address = `${idle.options.host}:${idle.options.port}`;
    const keys = oneKeyPerSlot(
      prefix,
      Array.from({ length: 400 }, (_, index) => `held-${index}`),
    )
      .filter((key) => client.slots[clusterSlot(hashKeyOf(prefix, key))]![0] === address)
      .slice(0, 40);
    expect(keys.length).toBe(40);
    const admin = admins.find((node) => node.options.port === idle.options.port)!;
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    // Its connection opens but its ready check waits out the pause: the master stays connecting.
    await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
    const listeners = () => idle.listenerCount('ready') + idle.listenerCount('close');
    const hold = (key: string) =>
      store.consume(`${namespaceOf()}${key}`, limits, [1], undefined, { deadlineMs: 300 }).then(
        () => 'answered',
        (error: Error) => error.name,
      );
    try {
      // One call per check, as the ticks of a busy key set make while the master connects.
      const first = hold(keys[0]!);
      await new Promise((resolve) => setImmediate(resolve));
      const withOneHeld = listeners();
      const held = [first, ...keys.slice(1).map(hold)];
      expect(listeners()).toBe(withOneHeld);
      expect(await Promise.all(held)).toEqual(keys.map(() => 'TimeoutError'));
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.map((warning) => warning.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
    // Once the master is connected, none of the calls that gave up was sent after all.
    if (idle.status !== 'ready') await once(idle, 'ready');
    for (const key of keys) expect(await counted(store, key, limits)).toBe(0);
  });

  it('a batch still waiting for the first connection at its deadline is answered by the fail mode and never counted', async () => {
    const { client, prefix, store, limits } = unconnectedStore();
    const limiter = createRateLimiter({
      store,
      limits,
      failMode: 'open',
      // Shorter than a Cluster's first connection (a connect and CLUSTER SLOTS at least).
      deadlineMs: 2,
      breaker: { consecutiveFailures: 1_000 },
      localBlockCache: false,
    });
    const keys = oneKeyPerSlot(prefix, spreadKeys);
    const results = await Promise.all(keys.map((key) => limiter.check(key)));
    if (client.status !== 'ready') await once(client, 'ready');
    // The store connects the masters its calls go to; a command for a master still connecting
    // fails at once (the offline queue is off), so the ping waits for them.
    await Promise.all(
      client
        .nodes('master')
        .map((master) =>
          master.status === 'ready' || master.status === 'wait' ? undefined : once(master, 'ready'),
        ),
    );
    // Whatever was held back would be sent at the connection: give it time to arrive and count.
    await client.ping();
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const [index, key] of keys.entries()) {
      const result = results[index]!;
      // Only a check the store itself answered may have counted.
      expect(await counted(store, key, limits)).toBe(result.source === 'store' && result.allowed ? 1 : 0);
    }
    expect(results.some((result) => result.source === 'fail-mode')).toBe(true);
    expect(noneCorked(client)).toBe(true);
    await limiter.close();
  });

  it('one-key calls count each request once while a slot migrates (ASK) and after it moved (MOVED)', async () => {
    const client = await connect();
    const prefix = nextPrefix();
    const store = new RedisStore({ client, prefix });
    const limits: LimitPolicy[] = [
      { name: 'default', algorithm: 'fixed-window', limit: 1_000_000, windowMs },
    ];
    const limiter = createRateLimiter({
      store,
      limits,
      failMode: 'closed',
      deadlineMs: 2_000,
      localBlockCache: false,
    });
    // Each tick: every key once, no two in one slot, so every call is one key's; one of them is in
    // the slot that moves, next to calls that succeed on every master.
    const keys = oneKeyPerSlot(prefix, spreadKeys);
    const slot = clusterSlot(hashKeyOf(prefix, keys[0]!));
    const source = await masterOf(slot);
    const target = admins.find((admin) => admin !== source)!;
    const targetId = (await target.cluster('MYID')) as string;
    const round = async () => {
      const results = await Promise.all(keys.map((key) => limiter.check(key)));
      for (const result of results) expect([result.source, result.allowed]).toEqual(['store', true]);
    };
    const staleMap = client.slots[slot]!.join(',');

    await round();
    // Migrating: the key is already on the target, the slot not yet handed over (ASK). (The slot
    // also holds the same key of the earlier tests: the hash tag leaves the prefix out.)
    expect(await migrateSlotKeys(source, target, slot)).toContain(hashKeyOf(prefix, keys[0]!));
    await round();
    // Moved: every master says the target serves the slot; the client still maps it to the
    // source, which answers MOVED.
    for (const admin of admins) await admin.cluster('SETSLOT', slot, 'NODE', targetId);
    expect(client.slots[slot]!.join(',')).toBe(staleMap);
    await round();
    await round();

    for (const key of keys) expect(await counted(store, key, limits)).toBe(4);
    expect(client.slots[slot]![0]).toBe(`127.0.0.1:${target.options.port}`);
    expect(noneCorked(client)).toBe(true);
    await limiter.close();
  });

  it.each([
    ['scripts', false, 'SCRIPT'],
    ['functions', true, 'FUNCTION'],
  ] as const)(
    '%s: after a FLUSH of the code on every master, one-key calls load it and count once',
    async (_, functions, flushed) => {
      const client = await connect();
      const prefix = nextPrefix();
      const store = new RedisStore({ client, prefix, functions });
      const limits: LimitPolicy[] = [
        { name: 'default', algorithm: 'fixed-window', limit: 1_000_000, windowMs },
      ];
      const limiter = createRateLimiter({ store, limits, failMode: 'closed', deadlineMs: 2_000 });
      const keys = oneKeyPerSlot(prefix, spreadKeys);
      await Promise.all(keys.map((key) => limiter.check(key)));
      await Promise.all(admins.map((admin) => admin.call(flushed, 'FLUSH')));
      const results = await Promise.all(keys.map((key) => limiter.check(key)));
      for (const result of results) expect([result.source, result.allowed]).toEqual(['store', true]);
      for (const key of keys) expect(await counted(store, key, limits)).toBe(2);
      expect(store.usesFunctions).toBe(functions);
      await limiter.close();
    },
  );
});
