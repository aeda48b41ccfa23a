import { delay } from '@noa/core';
import { generousDeadlineMs, uniqueName } from '@noa/testkit';
import type { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { type FixtureProcess, spawnFixture } from './fixture-process.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * `forceFresh` across instances (symfony#62328, #62840): instance A starts a slow plain run of a
 * key (it takes the lease), the source changes, and instance B is asked for a forced refresh.
 * B must not settle for A's run, which read the source before the change: B runs its own
 * factory, and its value is the one the cache ends up holding, even when A's run ends first.
 * Forced calls made together on several instances still share one run. Each cache has its own
 * Redis client: separate instances, in one process; the last case runs two child processes
 * (fixtures/forced-refresh-worker.ts), their factories held until the test lets them end.
 */
function describeForced(
  backend: string,
  skip: boolean,
  open: (options?: CacheOptions) => Promise<Cache>,
): void {
  describe.skipIf(skip)(`forceFresh across instances (${backend})`, () => {
    // A hash-tagged key too: its lease and value keys share a slot on a Cluster.
    it.each(['k', '{user:7}:profile'])(
      'does not settle for another instance’s run begun before it, and its value is the one cached (key %s)',
      async (key) => {
        const a = await open({ bus: false });
        const b = await open();
        const reader = await open();
        let source = 'old';
        // A reads the source at once and returns after 300 ms; B's run ends after A's.
        const slowA = async () => {
          const read = source;
          await delay(300);
          return read;
        };
        let forcedRuns = 0;
        const slowerB = async () => {
          forcedRuns += 1;
          const read = source;
          await delay(350);
          return read;
        };
        const first = a.getOrSet(key, slowA);
        await delay(100);
        source = 'new';
        const forced = b.getOrSet(key, slowerB, { forceFresh: true });
        expect(await first).toBe('old');
        expect(await forced).toBe('new');
        expect(forcedRuns).toBe(1);
        expect(await reader.get(key)).toBe('new');
        // A's L1 does not keep its older value either (its bus is off: only its refused write says so).
        expect(a.getLocal(key)).toBeUndefined();
      },
    );

    it('an early refresh of another instance begun before it is not settled for either', async () => {
      const options = { ttlMs: 1_000, refreshThresholdMs: 900 };
      const a = await open({ ...options, bus: false });
      const b = await open(options);
      const reader = await open(options);
      await a.set('ahead', 'first');
      await delay(150);
      let source = 'old';
      const slowA = async () => {
        const read = source;
        await delay(300);
        return read;
      };
      // A hit past the threshold starts A's refresh, which takes the lease.
      expect(await a.getOrSet('ahead', slowA)).toBe('first');
      await delay(100);
      source = 'new';
      const forced = await b.getOrSet(
        'ahead',
        async () => {
          const read = source;
          await delay(350);
          return read;
        },
        { forceFresh: true },
      );
      expect(forced).toBe('new');
      await delay(100);
      expect(await reader.get('ahead')).toBe('new');
    });

    it('a getOrSetMany run of another instance begun before it, ending first, is not cached over it', async () => {
      const a = await open({ bus: false });
      const b = await open();
      const reader = await open();
      let source = 'old';
      const batch = a.getOrSetMany(['m1', 'm2'], async (keys) => {
        const read = source;
        await delay(300);
        return keys.map((key) => `${key}:${read}`);
      });
      await delay(100);
      source = 'new';
      const forced = b.getOrSet(
        'm1',
        async () => {
          const read = source;
          await delay(350);
          return `m1:${read}`;
        },
        { forceFresh: true },
      );
      expect(await batch).toEqual(['m1:old', 'm2:old']);
      expect(await forced).toBe('m1:new');
      // The batch's other key, whose lease nobody took, is cached as before.
      expect(await reader.getMany(['m1', 'm2'])).toEqual(['m1:new', 'm2:old']);
    });

    it('forced calls made together on three instances share one run, a plain run begun before aside', async () => {
      const plain = await open({ bus: false });
      const instances = [await open(), await open(), await open()];
      let source = 'old';
      plain.getOrSet('burst', async () => {
        const read = source;
        await delay(300);
        return read;
      });
      await delay(50);
      source = 'new';
      let forcedRuns = 0;
      const load = async () => {
        forcedRuns += 1;
        const read = source;
        await delay(200);
        return read;
      };
      const first = instances[0]!.getOrSet('burst', load, { forceFresh: true });
      await delay(50);
      const others = instances.slice(1).map((cache) => cache.getOrSet('burst', load, { forceFresh: true }));
      expect(await Promise.all([first, ...others])).toEqual(['new', 'new', 'new']);
      expect(forcedRuns).toBe(1);
      await delay(200);
      expect(await instances[1]!.get('burst')).toBe('new');
    });
  });
}

const prefix = testPrefix('forced-instances');
const clients: Redis[] = [];
const caches: Cache[] = [];
afterAll(async () => {
  await Promise.all(caches.map((cache) => cache.close()));
  if (redisUp) await dropPrefix(prefix);
  for (const client of clients) client.disconnect();
});
const options = {
  ttlMs: 60_000,
  operationTimeoutMs: generousDeadlineMs,
  lock: { timeoutMs: 5_000, pollMs: 20 },
};
describeForced('Redis', !redisUp, async (extra = {}) => {
  const client = new Redis(redisUrl);
  clients.push(client);
  const cache = new Cache({ redis: client, prefix, ...options, ...extra });
  caches.push(cache);
  await cache.ready();
  return cache;
});

const { installed, client: cluster } = usePrivateCluster('forceFresh across instances on a Redis Cluster');
const clusterPrefix = `${uniqueName('cm_forced_cluster')}:`;
describeForced('Redis Cluster', !installed, async (extra = {}) => {
  const cache = new Cache({ redis: cluster() as Cluster, prefix: clusterPrefix, ...options, ...extra });
  caches.push(cache);
  await cache.ready();
  return cache;
});

/** A generous bound on a step that must come: a forced call that waits for the older run never runs. */
function within<T>(step: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    step,
    delay(10_000).then(() => {
      throw new Error(`${what} did not come`);
    }),
  ]);
}

describe.skipIf(!redisUp)('forceFresh across processes', () => {
  const workers: FixtureProcess[] = [];
  afterAll(async () => {
    for (const { child } of workers) {
      if (child.exitCode !== null) continue;
      child.stdin.on('error', () => {});
      child.stdin.write('finish\n');
      setTimeout(() => child.kill('SIGKILL'), 3_000).unref();
    }
    await Promise.all(workers.map(({ child, exited }) => (child.exitCode !== null ? undefined : exited)));
  });

  it('a forced call in one process runs its factory past another process’s older run, and its value is cached', async () => {
    const sourceKey = `${prefix}source`;
    const admin = new Redis(redisUrl);
    clients.push(admin);
    const spawn = (mode: string) =>
      spawnFixture('forced-refresh-worker.ts', [redisUrl, prefix, 'xproc', sourceKey, mode], mode);
    const [plain, forced] = [spawn('plain'), spawn('forced')];
    workers.push(plain, forced);
    await Promise.all([plain.next('ready'), forced.next('ready')]);
    await admin.set(sourceKey, 'old');
    plain.child.stdin.write('go\n');
    expect((await within(plain.next('running'), 'the plain run')).read).toBe('old');
    await admin.set(sourceKey, 'new');
    forced.child.stdin.write('go\n');
    expect((await within(forced.next('running'), 'the forced run')).read).toBe('new');
    // The older run ends first: its write is refused, its caller still gets its value.
    plain.child.stdin.write('finish\n');
    expect((await plain.next('done')).value).toBe('old');
    forced.child.stdin.write('finish\n');
    expect((await forced.next('done')).value).toBe('new');
    const reader = new Cache({ redis: admin, prefix, operationTimeoutMs: generousDeadlineMs });
    caches.push(reader);
    await reader.ready();
    expect(await reader.get('xproc')).toBe('new');
  }, 60_000);
});
