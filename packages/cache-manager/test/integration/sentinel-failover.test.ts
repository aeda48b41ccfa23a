import { delay } from '@noa/core';
import { recordingLogger, startPrivateSentinelOrSkip } from '@noa/testkit';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { resyncWatcher } from './helpers.js';

/**
 * A user on a Sentinel-managed Redis (ioredis `new Redis({ sentinels, name })`, two app
 * instances A and B): reads and writes keep answering while the sentinels fail the master over
 * on request (SENTINEL FAILOVER) and after it crashes (SIGKILL), with no exception under the
 * default `onBackendError`, L1 serving while no master answers; afterwards each bus has
 * resubscribed on the new master and dropped its L1, a set on A reaches B's L1, and a key's
 * factory runs once across both instances (leases on the new master).
 */
const { sentinel, skip } = await startPrivateSentinelOrSkip({ sentinelCount: 3 });
const operationTimeoutMs = 500;
const keys = Array.from({ length: 10 }, (_, index) => `k${index}`);
afterAll(async () => {
  await sentinel?.stop();
});

describe.skipIf(skip !== undefined)('cache through a Redis Sentinel failover', () => {
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  let a: Cache;
  let b: Cache;
  // Whether B's bus has reconnected (its L1 dropped) since `reset()`.
  let bResynced: { reset: () => void; resynced: () => boolean; at: () => number };
  // When B's bus last reconnected (epoch ms).
  let resyncedAt = 0;

  async function open(logger?: ReturnType<typeof resyncWatcher>['logger']): Promise<Cache> {
    // `failoverDetector`: the client leaves the old master when the sentinels announce the new one
    // (README: without it, it stays there about 10 s and the writes made meanwhile are lost).
    const client = sentinel!.client({ failoverDetector: true });
    clients.push(client);
    const cache = new Cache({
      redis: client,
      prefix: 'sentinel:',
      ttlMs: 600_000,
      operationTimeoutMs,
      ...(logger === undefined ? {} : { logger }),
    });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  beforeAll(async () => {
    a = await open();
    let watcher = resyncWatcher();
    const logger = {
      debug: (message: string) => watcher.logger.debug(message),
      info: (message: string) => {
        if (message.startsWith('invalidation bus reconnected')) resyncedAt = Date.now();
        watcher.logger.info(message);
      },
      warn: (message: string) => watcher.logger.warn(message),
      error: (message: string) => watcher.logger.error(message),
    };
    b = await open(logger);
    bResynced = {
      reset: () => {
        watcher = resyncWatcher();
      },
      resynced: () => watcher.resynced(),
      at: () => resyncedAt,
    };
  });

  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
  });

  /**
   * Until `stop()`: A writes each key's next version and reads it back through getOrSet, B reads
   * it. Collects every call that threw and the slowest call.
   */
  function traffic() {
    const thrown: string[] = [];
    let slowestMs = 0;
    let version = 0;
    let stopped = false;
    const timed = async <T>(what: string, call: () => Promise<T>) => {
      const started = performance.now();
      try {
        await call();
      } catch (error) {
        thrown.push(`${what}: ${(error as Error).message}`);
      }
      slowestMs = Math.max(slowestMs, performance.now() - started);
    };
    const loop = (async () => {
      while (!stopped) {
        version += 1;
        await Promise.all(
          keys.map(async (key) => {
            await timed(`A.set ${key}`, () => a.set(key, { key, version }));
            await timed(`A.getOrSet ${key}`, () => a.getOrSet(key, () => ({ key, version: -1 })));
            await timed(`B.get ${key}`, () => b.get(key));
          }),
        );
        await delay(20);
      }
    })();
    loop.catch(() => undefined);
    return {
      thrown,
      slowestMs: () => slowestMs,
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  /** What must hold once the sentinels' new master serves both instances. */
  async function worksAfterFailover(label: string): Promise<void> {
    // B's bus resubscribed (on the new master) and dropped its L1: a value only it had read is gone.
    await until(`${label}: B's bus resynced`, () => bResynced.resynced());
    expect(b.getLocal('marker'), 'B dropped its L1 on the bus reconnect').toBeUndefined();

    // A's client may still be on the old master (killed, back as a replica or about to be
    // demoted) for a moment after B resynced: its writes then miss the shared tier, as ioredis's
    // Sentinel client does until it follows the sentinels (CI saw B read the value of the run
    // before once). So first wait until a write of A's is what B reads from L2: a key of its own,
    // each try a new value, so that the bus checks below count only their own messages.
    let probes = 0;
    await until(`${label}: A's write reaches B through L2`, async () => {
      probes += 1;
      const value = `${label} probe ${probes}`;
      await a.set('a-probe', value);
      return (await b.get('a-probe')) === value;
    });

    // The bus carries A's write to B's L1. B waits for the message of the v2 write, the second
    // `set` of 'bus': v1's own message may reach B after B read v1, and B rightly keeps the copy
    // of the very write the message names (CI read a v1 message as v2's once).
    let heardSets = 0;
    let onSet = () => {};
    const stop = b.on('invalidation', (message) => {
      if (message.t === 'set' && message.k.includes('bus')) {
        heardSets += 1;
        onSet();
      }
    });
    const heard = new Promise<void>((resolve) => {
      onSet = () => {
        if (heardSets >= 2) resolve();
      };
    });
    await a.set('bus', `${label} v1`);
    expect(await b.get('bus')).toBe(`${label} v1`);
    expect(b.getLocal('bus')).toBe(`${label} v1`);
    await a.set('bus', `${label} v2`);
    await heard;
    stop();
    expect(b.getLocal('bus')).not.toBe(`${label} v1`);
    expect(await b.get('bus')).toBe(`${label} v2`);

    // Stampede: one factory run across both instances, the other waits on the lease.
    let runs = 0;
    const factory = async () => {
      runs += 1;
      await delay(300);
      return `${label} computed`;
    };
    const results = await Promise.all([
      a.getOrSet(`stampede-${label}`, factory),
      b.getOrSet(`stampede-${label}`, factory),
      a.getOrSet(`stampede-${label}`, factory),
      b.getOrSet(`stampede-${label}`, factory),
    ]);
    expect(results).toEqual(Array(4).fill(`${label} computed`));
    expect(runs).toBe(1);
  }

  it('keeps answering through a SENTINEL FAILOVER, then the bus, L1 drop and leases work on the new master', async () => {
    await b.set('marker', 'only in L1 until the failover');
    expect(b.getLocal('marker')).toBeDefined();
    bResynced.reset();
    const flow = traffic();
    try {
      await delay(300);
      const askedAt = Date.now();
      await sentinel!.failover();
      await until('B resynced', () => bResynced.resynced());
      console.log(`SENTINEL FAILOVER: B's bus resynced ${bResynced.at() - askedAt} ms after it was asked`);
      await delay(300);
    } finally {
      await flow.stop();
    }
    expect(flow.thrown).toEqual([]);
    expect(flow.slowestMs()).toBeLessThan(operationTimeoutMs + 1_500);
    // Every key reads back a version of itself on both instances.
    for (const key of keys) {
      expect((await a.get<{ key: string }>(key))?.key).toBe(key);
      expect((await b.get<{ key: string }>(key))?.key).toBe(key);
    }
    await worksAfterFailover('planned');
  });

  it('serves L1 while a killed master is replaced, without throwing, then the bus, L1 drop and leases work on the new master', async () => {
    // B read these keys (into its L1) before the crash; the traffic leaves them alone (its own
    // keys' L1 copies are invalidated by each write, and a reread in the outage misses).
    const steady = keys.map((key) => `steady-${key}`);
    for (const key of steady) await a.set(key, { key });
    for (const key of steady) expect(await b.get(key)).toEqual({ key });
    await b.set('marker', 'only in L1 until the crash');
    bResynced.reset();
    const flow = traffic();
    try {
      await delay(300);
      const killedAt = Date.now();
      const killing = sentinel!.killMaster();
      await delay(300);
      // No master: B's L1 answers its reads; a miss's factory still runs; nothing throws.
      const served = await Promise.all(steady.map((key) => b.get<{ key: string }>(key)));
      expect(served.map((value) => value?.key)).toEqual(steady);
      expect(await a.getOrSet('fresh-while-down', () => 'computed')).toBe('computed');
      const { promotedAfterMs } = await killing;
      await until('B answers from L2 again', async () => (await b.has('k0')) && bResynced.resynced());
      console.log(
        `master killed: promoted after ${promotedAfterMs} ms, B's bus resynced ${bResynced.at() - killedAt} ms after the kill`,
      );
      await delay(300);
    } finally {
      await flow.stop();
    }
    expect(flow.thrown).toEqual([]);
    expect(flow.slowestMs()).toBeLessThan(operationTimeoutMs + 1_500);
    await worksAfterFailover('crash');
  });
});

describe.skipIf(skip !== undefined)('a Sentinel client without failoverDetector', () => {
  // The loss it warns about (a write made after the promotion, on the old master, read by every
  // instance until the sentinels demote it, then gone) was shown by a failover here when the
  // warning was added (README "Redis Sentinel"); it is ioredis's behaviour, so this test keeps
  // to the warning and spares CI a ~15 s failover.
  it('is warned about at construction when the Sentinel client has no failoverDetector', async () => {
    const logger = recordingLogger();
    const without = sentinel!.client();
    const withDetector = sentinel!.client({ failoverDetector: true });
    const caches = [
      new Cache({ redis: without, prefix: 'no-detector:', logger }),
      new Cache({ redis: withDetector, prefix: 'detector:', logger }),
    ];
    try {
      await Promise.all(caches.map((cache) => cache.ready()));
      expect(
        logger.messages('warn').filter((message) => message.includes('failoverDetector: true')),
      ).toHaveLength(1);
    } finally {
      await Promise.all(caches.map((cache) => cache.close()));
      without.disconnect();
      withDetector.disconnect();
    }
  });
});

/** Polls `condition` every 20 ms until it holds, or throws after `timeoutMs` naming `what`. */
async function until(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}
