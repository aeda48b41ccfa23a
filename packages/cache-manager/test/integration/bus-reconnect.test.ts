import { delay } from '@noa/core';
import { monitorRedis, type PrivateRedis, startPrivateRedis, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { resyncWatcher } from './helpers.js';
import { HoldingProxy } from './holding-proxy.js';

const started = await startPrivateRedisOrSkip();

/**
 * What a bus reconnect leaves behind: the window before the new subscription takes effect,
 * and the factory runs that span it. Each case kills the bus connections (`CLIENT KILL TYPE
 * pubsub`) on a private Redis, which the instances' other connections survive.
 */
describe.skipIf(started.skip !== undefined)('invalidation bus reconnect', () => {
  let server: PrivateRedis;
  let admin: Redis;
  let proxy: HoldingProxy;
  const clients: Redis[] = [];
  const caches: Cache[] = [];

  // A case that fails before its own release() must not leave its holds for the next one.
  afterEach(() => proxy?.release());

  /** A cache on the private Redis, directly or (`throughProxy`) through the holding proxy. */
  async function open(prefix: string, throughProxy = false, options: CacheOptions = {}): Promise<Cache> {
    const client = new Redis(throughProxy ? proxy.url : server.url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({ redis: client, prefix, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  async function subscribers(prefix: string): Promise<number> {
    return Number(((await admin.pubsub('NUMSUB', `${prefix}__bus`)) as [string, number])[1]);
  }

  /** PUBLISH calls the server has run (the bus publishes a write's message after the write). */
  async function publishes(): Promise<number> {
    const stats = await admin.info('commandstats');
    return Number(/cmdstat_publish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }

  /**
   * Counts, server-side (MONITOR on the server at `url`), the lease attempts (`SET … NX`) on keys
   * of `prefix`: how a case knows that a waiter has read its value in grace and reached the
   * lease, rather than assuming it did within a fixed delay.
   */
  async function watchLeaseAttempts(
    url: string,
    prefix: string,
  ): Promise<{ count: () => number; stop: () => void }> {
    const monitor = await monitorRedis(url);
    let attempts = 0;
    monitor.on(({ args: [command, key] }) => {
      if (command?.toLowerCase() === 'set' && key?.startsWith(`${prefix}__lease:`)) attempts += 1;
    });
    return { count: () => attempts, stop: () => monitor.stop() };
  }

  /** Polls `check` until true, for up to 10 s (a loaded machine's slowest, not a fixed wait). */
  async function until(check: () => boolean | Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      if (Date.now() > deadline) return false;
      await delay(10);
    }
    return true;
  }

  async function waitForSubscribers(prefix: string, count: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && (await subscribers(prefix)) < count) await delay(10);
    expect(await subscribers(prefix)).toBe(count);
  }

  beforeAll(async () => {
    server = started.redis!;
    admin = new Redis(server.url);
    proxy = await HoldingProxy.start(server.port);
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin?.disconnect();
    await proxy?.close();
    await server?.stop();
  });

  it('a value read between the reconnect and the new SUBSCRIBE is not kept past a write published then', async () => {
    const prefix = 'window:';
    const reader = await open(prefix, true);
    const writer = await open(prefix);
    await writer.set('k', 'v1');
    expect(await reader.get('k')).toBe('v1');
    expect(reader.getLocal('k')).toBe('v1');

    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    // The reader's bus connection is back (ready) and its SUBSCRIBE is on its way.
    await proxy.held();
    await waitForSubscribers(prefix, 1);
    // In the window: the reader caches what L2 holds, then a write's message reaches nobody.
    expect(await reader.get('k')).toBe('v1');
    const published = await publishes();
    await writer.set('k', 'v2');
    while ((await publishes()) === published) await delay(5);
    proxy.release();
    await waitForSubscribers(prefix, 2);
    // Once subscribed, nothing will tell the reader about v2: its L1 must not still hold v1.
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && reader.getLocal('k') === 'v1') await delay(10);
    expect(reader.getLocal('k')).toBeUndefined();
    expect(await reader.get('k')).toBe('v2');
  });

  it('a factory run across a bus reconnect caches its value when L2 did not change meanwhile', async () => {
    const prefix = 'spanning:';
    const { logger, resynced } = resyncWatcher();
    const runner = await open(prefix, false, { logger, graceMs: 60_000 });
    const writer = await open(prefix, false, { graceMs: 60_000 });
    // A value in grace in L2: the run sees its `createdAt`, and finds it again after the outage.
    await writer.set('k', 'old');
    await writer.expire('k');
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !resynced()) await delay(10);
    expect(resynced()).toBe(true);
    // Nothing wrote the key while the bus was down: the result is as good as any other run's.
    finish('computed');
    expect(await running).toBe('computed');
    expect(runner.getLocal('k')).toBe('computed');
    const fresh = await open(prefix);
    expect(await fresh.get('k')).toBe('computed');
  });

  it('a factory run across a bus reconnect does not cache over a write made in the outage', async () => {
    const prefix = 'spanning-written:';
    const { logger, resynced } = resyncWatcher();
    const runner = await open(prefix, false, { logger });
    const writer = await open(prefix);
    await writer.set('k', 'old');
    await writer.expire('k');
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    // The write lands in L2 while the runner's bus is down (its message is lost to it).
    await writer.set('k', 'newer');
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !resynced()) await delay(10);
    expect(resynced()).toBe(true);
    finish('older');
    expect(await running).toBe('older');
    expect(await runner.get('k')).toBe('newer');
    expect(await (await open(prefix)).get('k')).toBe('newer');
  });

  it('a waiter whose bus is down serves its value in grace when the lease holder fails, without calling the source', async () => {
    const prefix = 'failed-holder:';
    const waiter = await open(prefix, true);
    const holder = await open(prefix);
    // Expired by a call, not by a 50 ms TTL: on a loaded machine the waiter's read below came
    // after such a TTL had run out, and found nothing fresh to read.
    await holder.set('k', 'old', { ttlMs: 60_000, graceMs: 60_000 });
    expect(await waiter.get('k')).toBe('old');
    await holder.expire('k');
    expect(await until(() => waiter.getLocal('k') === undefined)).toBe(true);
    // The waiter's bus stays down: its SUBSCRIBE is held back, so no `rel` message reaches it.
    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await proxy.held();
    let failHolder: ((error: Error) => void) | undefined;
    const holding = holder.getOrSet('k', () => new Promise<string>((_, reject) => (failHolder = reject)));
    while (failHolder === undefined) await delay(5);
    let waiterRuns = 0;
    const leaseAttempts = await watchLeaseAttempts(server.url, prefix);
    const waiting = waiter.getOrSet('k', async () => {
      waiterRuns += 1;
      return 'recomputed';
    });
    // The holder fails once the waiter waits on its lease (seen by Redis), not after a fixed delay.
    expect(await until(() => leaseAttempts.count() > 0)).toBe(true);
    leaseAttempts.stop();
    failHolder(new Error('source down'));
    expect(await holding).toBe('old');
    // As with a working bus: the source that just failed is not called again by each waiter.
    expect(await waiting).toBe('old');
    expect(waiterRuns).toBe(0);
    proxy.release();
  });

  it('a waiter that takes the lease after a failed holder serves the value a later holder stored, not its value in grace', async () => {
    const prefix = 'failed-then-stored:';
    const waiter = await open(prefix, true);
    const writer = await open(prefix);
    // Expired by a call, not by a 50 ms TTL the waiter's read below could come after.
    await writer.set('k', 'old', { ttlMs: 60_000, graceMs: 60_000 });
    expect(await waiter.get('k')).toBe('old');
    await writer.expire('k');
    expect(await until(() => waiter.getLocal('k') === undefined)).toBe(true);
    // A holder failed (its mark lasts its back-off), and another instance took the lease after it.
    await admin.set(`${prefix}__failed:k`, '1', 'PX', 60_000);
    await admin.set(`${prefix}__lease:k`, 'next-holder', 'PX', 60_000);
    // The waiter's SET NX are held: its first goes on (busy), its first poll's waits below.
    const leaseAttempt = /\r\nNX\r\n/i;
    proxy.holdMatching = leaseAttempt;
    let waiterRuns = 0;
    const waiting = waiter.getOrSet('k', async () => {
      waiterRuns += 1;
      return 'recomputed';
    });
    await proxy.held();
    proxy.release();
    proxy.holdMatching = leaseAttempt;
    await proxy.held();
    // Between the waiter's poll read and its SET NX, the next holder stores its value and frees the lease.
    await writer.set('k', 'fresh');
    await admin.del(`${prefix}__lease:k`);
    proxy.release();
    expect(await waiting).toBe('fresh');
    expect(waiterRuns).toBe(0);
    expect(waiter.getLocal('k')).toBe('fresh');
  });

  it('a factory run across a bus reconnect does not cache over a write then delete of its key, both lost in the outage', async () => {
    const prefix = 'spanning-written-deleted:';
    const { logger, resynced } = resyncWatcher();
    const runner = await open(prefix, false, { logger });
    const writer = await open(prefix);
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    // Both land in L2 while the runner's bus is down: L2 holds nothing again, as the run saw it.
    await writer.set('k', 'newer');
    await writer.delete('k');
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !resynced()) await delay(10);
    expect(resynced()).toBe(true);
    // The factory read its source before the delete: nothing may serve its result afterwards.
    finish('older');
    expect(await running).toBe('older');
    expect(await runner.get('k')).toBeUndefined();
    expect(await writer.get('k')).toBeUndefined();
    expect(await (await open(prefix)).get('k')).toBeUndefined();
  });

  it('a factory run that ends while its bus is down does not cache over a write then delete the bus lost', async () => {
    const prefix = 'ended-while-down:';
    const runner = await open(prefix, true);
    const writer = await open(prefix);
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    // The runner's bus connection is back, but its SUBSCRIBE is held: it hears nothing yet.
    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await proxy.held();
    await writer.set('k', 'newer');
    await writer.delete('k');
    // The run ends before the resync: only the lost connection tells it that it missed messages.
    finish('older');
    expect(await running).toBe('older');
    proxy.release();
    await waitForSubscribers(prefix, 2);
    expect(await writer.get('k')).toBeUndefined();
    expect(await (await open(prefix)).get('k')).toBeUndefined();
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && runner.getLocal('k') !== undefined) await delay(10);
    expect(await runner.get('k')).toBeUndefined();
  });

  it('a factory run that starts and ends while its bus is down does not cache over a write the bus lost', async () => {
    const prefix = 'started-while-down:';
    const runner = await open(prefix, true);
    const writer = await open(prefix);
    // The runner's bus connection is back, but its SUBSCRIBE is held: it hears nothing yet.
    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await proxy.held();
    // Started after the connection closed: no close happens during it to mark it.
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    await writer.set('k', 'newer');
    // The run ends before the resync, with a value read from the source before the write.
    finish('older');
    expect(await running).toBe('older');
    const inL2 = await (await open(prefix)).get('k');
    proxy.release();
    expect(inL2).toBe('newer');
    await waitForSubscribers(prefix, 3);
    expect(await writer.get('k')).toBe('newer');
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && runner.getLocal('k') !== undefined) await delay(10);
    expect(await runner.get('k')).toBe('newer');
  });

  it('a getOrSetMany run that starts and ends while its bus is down does not cache over a write the bus lost', async () => {
    const prefix = 'many-started-while-down:';
    const runner = await open(prefix, true);
    const writer = await open(prefix);
    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await proxy.held();
    let finish: ((values: string[]) => void) | undefined;
    const running = runner.getOrSetMany(
      ['a', 'b'],
      () => new Promise<string[]>((resolve) => (finish = resolve)),
    );
    while (finish === undefined) await delay(5);
    await writer.set('a', 'newer');
    finish(['older', 'computed']);
    expect(await running).toEqual(['older', 'computed']);
    const inL2 = await (await open(prefix)).get('a');
    proxy.release();
    expect(inL2).toBe('newer');
    await waitForSubscribers(prefix, 3);
    const deadline = Date.now() + 2_000;
    while (Date.now() < deadline && runner.getLocal('a') !== undefined) await delay(10);
    expect(await runner.get('a')).toBe('newer');
  });

  it('a factory run that starts while its bus is down and ends after the resync does not cache over a write the bus lost', async () => {
    const prefix = 'started-while-down-ended-after:';
    const { logger, resynced } = resyncWatcher();
    const runner = await open(prefix, true, { logger });
    const writer = await open(prefix);
    proxy.holdSubscribe = true;
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await proxy.held();
    let finish: ((value: string) => void) | undefined;
    const running = runner.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
    while (finish === undefined) await delay(5);
    await writer.set('k', 'newer');
    proxy.release();
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !resynced()) await delay(10);
    expect(resynced()).toBe(true);
    finish('older');
    expect(await running).toBe('older');
    expect(await runner.get('k')).toBe('newer');
    expect(await (await open(prefix)).get('k')).toBe('newer');
  });

  it('a lease waiter still serves its value in grace when all of Redis dies during its wait and its own factory fails', async () => {
    await using dying = await startPrivateRedis();
    const caches: Cache[] = [];
    const clients: Redis[] = [];
    const openOn = async () => {
      const client = new Redis(dying.url, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      clients.push(client);
      const cache = new Cache({ redis: client, prefix: 'dying:', graceMs: 60_000, operationTimeoutMs: 150 });
      caches.push(cache);
      await cache.ready();
      return cache;
    };
    try {
      const holder = await openOn();
      const waiter = await openOn();
      await holder.set('k', 'old');
      expect(await waiter.get('k')).toBe('old');
      await holder.expire('k');
      expect(await until(() => waiter.getLocal('k') === undefined)).toBe(true);
      let finish: ((value: string) => void) | undefined;
      const holding = holder.getOrSet('k', () => new Promise<string>((resolve) => (finish = resolve)));
      while (finish === undefined) await delay(5);
      // The waiter finds the lease taken and polls, its value in grace at hand: Redis is killed
      // once the waiter's lease attempt has reached it, not after a fixed delay.
      const leaseAttempts = await watchLeaseAttempts(dying.url, 'dying:');
      const waiting = waiter.getOrSet('k', async () => {
        throw new Error('source down');
      });
      expect(await until(() => leaseAttempts.count() > 0)).toBe(true);
      leaseAttempts.stop();
      await dying.kill();
      // Its bus connection closes and its next poll fails: neither is a change of the key.
      expect(await waiting).toBe('old');
      finish('computed');
      expect(await holding).toBe('computed');
    } finally {
      await Promise.all(caches.map((cache) => cache.close()));
      for (const client of clients) client.disconnect();
    }
  });
});
