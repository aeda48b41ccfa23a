import { randomBytes } from 'node:crypto';
import { ClosedError, ConfigError, delay, ManualClock } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  Cache,
  type CacheOptions,
  type FactoryContext,
  FactoryError,
  SerializationError,
  WarmAbortedError,
} from '../../src/index.js';

/** Builds caches on one backend; every cache built by one factory shares that backend. */
export interface ConformanceBackend {
  /** Options merged into every cache (e.g. `{ redis }` and a unique prefix). */
  options: () => CacheOptions;
  cleanup?: () => Promise<void>;
}

/**
 * The behaviour every backend combination must have: memory-only, memory + Redis and
 * memory + Redis Cluster run this same suite unchanged. `shared` is true when two caches
 * built from `options()` share data (Redis), false for memory; it is a parameter rather than
 * part of the lazily built backend so that the cross-instance cases are reported as skipped
 * on memory instead of passing without asserting anything. `l2Only`: the backend's caches have
 * `l1: false` (see "L2 only" in the README); the cases about L1 itself assert what such a cache
 * does instead, or are skipped with the reason in their name.
 */
export function describeCacheConformance(
  name: string,
  shared: boolean,
  setup: () => ConformanceBackend,
  skip = false,
  l2Only = false,
): void {
  describe.skipIf(skip)(`cache conformance: ${name}`, () => {
    /** A case about L1 itself: skipped for an L2-only cache, saying why. */
    const itWithL1 = (title: string, reason: string, run: () => Promise<void>) =>
      l2Only ? it.skip(`${title} [not run: ${reason}]`, run) : it(title, run);
    /**
     * What `cache` serves of `key` without another tier: its L1 copy, or for an L2-only cache,
     * which has none, its read of L2.
     */
    const held = (cache: Cache, key: string): Promise<unknown> =>
      l2Only ? cache.get(key) : Promise.resolve(cache.getLocal(key));
    /** The tier an instance's repeated read hits. */
    const ownTier = l2Only ? 'l2' : 'l1';
    const caches: Cache[] = [];
    let backend: ConformanceBackend | undefined;
    const make = (extra: CacheOptions = {}) => {
      backend ??= setup();
      const cache = new Cache({ ...backend.options(), ...extra });
      caches.push(cache);
      return cache;
    };
    /** A prefix under the backend's own (so its cleanup drops it) for tests that clear the root. */
    const ownPrefix = () => {
      backend ??= setup();
      return backend.options().prefix ?? 'noa:cache:';
    };
    afterAll(async () => {
      await Promise.all(caches.map((cache) => cache.close()));
      await backend?.cleanup?.();
    });

    it('set, get, has, delete', async () => {
      const cache = make();
      expect(await cache.get('a')).toBeUndefined();
      expect(await cache.has('a')).toBe(false);
      await cache.set('a', { n: 1 });
      expect(await cache.get('a')).toEqual({ n: 1 });
      expect(await cache.has('a')).toBe(true);
      await cache.delete('a');
      expect(await cache.get('a')).toBeUndefined();
    });

    it.skipIf(!shared)(
      'a delete, tag delete or clear right after a write wins in the shared tier, in either write mode',
      async () => {
        // An L2-only cache takes no background writes (see the README, "L2 only").
        const writeModes: ('await' | 'background')[] = l2Only ? ['await'] : ['await', 'background'];
        for (const writeMode of writeModes) {
          const cache = make({ writeMode });
          // Not awaited (or, in background mode, resolved once L1 has it): the L2 write is in flight.
          const writes = [
            cache.set(`order:${writeMode}:deleted`, 'v'),
            cache.set(`order:${writeMode}:tagged`, 'v', { tags: [`order-${writeMode}`] }),
            cache.namespace(`order-${writeMode}`).set('cleared', 'v'),
          ];
          await cache.delete(`order:${writeMode}:deleted`);
          await cache.deleteByTag(`order-${writeMode}`);
          await cache.namespace(`order-${writeMode}`).clear();
          await Promise.all(writes);
          await cache.set(`order:${writeMode}:awaited`, 'v');
          await cache.delete(`order:${writeMode}:awaited`);
          // Waits for background writes.
          await cache.close();
          const other = make();
          expect(
            await other.getMany([
              `order:${writeMode}:deleted`,
              `order:${writeMode}:tagged`,
              `order-${writeMode}:cleared`,
              `order:${writeMode}:awaited`,
            ]),
          ).toEqual([undefined, undefined, undefined, undefined]);
        }
      },
    );

    it('stores null and falsy values', async () => {
      const cache = make();
      await cache.set('null', null);
      await cache.set('zero', 0);
      await cache.set('empty', '');
      expect(await cache.getMany(['null', 'zero', 'empty', 'missing'])).toEqual([null, 0, '', undefined]);
    });

    it('setMany, getMany, deleteMany keep order', async () => {
      const cache = make();
      await cache.setMany([
        { key: 'x', value: 1 },
        { key: 'y', value: 2 },
        { key: 'z', value: 3 },
      ]);
      expect(await cache.getMany(['z', 'nope', 'x', 'y'])).toEqual([3, undefined, 1, 2]);
      await cache.deleteMany(['x', 'z']);
      expect(await cache.getMany(['x', 'y', 'z'])).toEqual([undefined, 2, undefined]);
    });

    it('expires entries after their TTL (injected clock)', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock });
      await cache.set('short', 'v', { ttlMs: 1_000 });
      await cache.set('forever', 'w');
      clock.advance(999);
      expect(await cache.get('short')).toBe('v');
      clock.advance(1);
      expect(await cache.get('short')).toBeUndefined();
      expect(await cache.get('forever')).toBe('w');
    });

    it('ttl reports the remaining fresh lifetime, then grace, then undefined, from L1 or L2 (a peek, not a read)', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, ttlMs: 10_000, graceMs: 5_000 });
      const other = make({ clock, ttlMs: 10_000, graceMs: 5_000 });
      expect(await cache.ttl('ttl:absent')).toBeUndefined();
      await cache.set('ttl:a', 1);
      const forever = make({ clock });
      await forever.set('ttl:none', 1);
      expect(await forever.ttl('ttl:none')).toEqual({
        ttlMs: Infinity,
        inGrace: false,
        untilGoneMs: Infinity,
      });
      expect(await cache.ttl('ttl:a')).toEqual({ ttlMs: 10_000, inGrace: false, untilGoneMs: 15_000 });
      // From L2 on an instance that never read it (memory: nothing shared).
      expect(await other.ttl('ttl:a')).toEqual(
        shared ? { ttlMs: 10_000, inGrace: false, untilGoneMs: 15_000 } : undefined,
      );
      clock.advance(4_000);
      expect(await cache.ttl('ttl:a')).toEqual({ ttlMs: 6_000, inGrace: false, untilGoneMs: 11_000 });
      clock.advance(7_000);
      expect(await cache.get('ttl:a')).toBeUndefined();
      expect(await cache.ttl('ttl:a')).toEqual({ ttlMs: 0, inGrace: true, untilGoneMs: 4_000 });
      if (shared) expect(await other.ttl('ttl:a')).toEqual({ ttlMs: 0, inGrace: true, untilGoneMs: 4_000 });
      clock.advance(4_000);
      expect(await cache.ttl('ttl:a')).toBeUndefined();
      expect(await other.ttl('ttl:a')).toBeUndefined();
      await cache.set('ttl:b', 2, { ttlMs: 1_000 });
      await cache.delete('ttl:b');
      expect(await cache.ttl('ttl:b')).toBeUndefined();
      await expect(cache.ttl(42 as unknown as string)).rejects.toBeInstanceOf(ConfigError);
      // L1's copy capped by l1.maxTtlMs: with Redis the entry's own expiry (L2's) answers.
      const capped = make({ clock, ttlMs: 10_000, l1: { maxTtlMs: 1_000 } });
      await capped.set('ttl:capped', 1);
      expect((await capped.ttl('ttl:capped'))?.ttlMs).toBe(shared ? 10_000 : 1_000);
    });

    it('ttl of a sliding entry: what is left of its window if nobody reads it, never past its bound; ttl itself does not slide it', async () => {
      const clock = new ManualClock(Date.now());
      const options = { clock, ttlMs: 60_000, slidingTtlMs: 10_000, graceMs: 1_000 };
      const cache = make(options);
      await cache.set('ttl:slide', 1);
      const window = {
        ttlMs: 10_000,
        inGrace: false,
        untilGoneMs: 11_000,
        slidingMs: 10_000,
        maxTtlMs: 60_000,
      };
      expect(await cache.ttl('ttl:slide')).toEqual(window);
      clock.advance(4_000);
      const after4s = {
        ttlMs: 6_000,
        inGrace: false,
        untilGoneMs: 7_000,
        slidingMs: 10_000,
        maxTtlMs: 56_000,
      };
      expect(await cache.ttl('ttl:slide')).toEqual(after4s);
      expect(await cache.ttl('ttl:slide')).toEqual(after4s);
      if (shared) {
        // L2's copy, peeked from another instance: not slid by that either.
        const other = make(options);
        expect(await other.ttl('ttl:slide')).toEqual(after4s);
        expect(await other.ttl('ttl:slide')).toEqual(after4s);
      }
      // A read slides it: a full window again.
      expect(await cache.get('ttl:slide')).toBe(1);
      expect(await cache.ttl('ttl:slide')).toEqual({ ...window, maxTtlMs: 56_000 });
      // Near its bound, the window is cut there.
      for (let at = 4_000; at < 54_000; at += 5_000) {
        clock.advance(5_000);
        expect(await cache.get('ttl:slide')).toBe(1);
      }
      expect(await cache.ttl('ttl:slide')).toEqual({
        ttlMs: 6_000,
        inGrace: false,
        untilGoneMs: 7_000,
        slidingMs: 10_000,
        maxTtlMs: 6_000,
      });
    });

    it('round-trips rich values (Date, Map, Set, Buffer, BigInt)', async () => {
      const cache = make();
      const value = {
        at: new Date(1_700_000_000_000),
        map: new Map<unknown, unknown>([
          ['a', 1],
          [2, { nested: true }],
        ]),
        set: new Set(['x']),
        bytes: Buffer.from('hello'),
        big: 2n ** 70n,
        list: [1, 'two', null],
      };
      await cache.set('rich', value);
      expect(await cache.get('rich')).toEqual(value);
      if (shared) {
        const other = make();
        expect(await other.get('rich')).toEqual(value);
      }
    });

    it('namespaces isolate keys and clear only their own', async () => {
      const cache = make();
      const users = cache.namespace('users');
      const posts = cache.namespace('posts');
      await users.set('1', 'alice');
      await posts.set('1', 'hello');
      expect(await users.get('1')).toBe('alice');
      expect(await posts.get('1')).toBe('hello');
      await users.clear();
      expect(await users.get('1')).toBeUndefined();
      expect(await posts.get('1')).toBe('hello');
    });

    it('a namespace is a key space of its own: no root or nested key is one of its keys, and its clear reaches only it and its children', async () => {
      const cache = make();
      const other = make();
      // Subscribed to the bus: a cache not yet ready may miss the clear's invalidation.
      await other.ready();
      const users = cache.namespace('users');
      const admins = users.namespace('admins');
      await cache.set('users:42', 'root', { tags: ['ns-space'] });
      await cache.set(':users::42', 'root, colon first');
      await users.set('admins:42', 'users');
      await users.set(':admins::42', 'users, colon first');
      expect(await users.get('42')).toBeUndefined();
      expect(await admins.get('42')).toBeUndefined();
      await admins.set('42', 'admins');
      await users.set('42', 'users 42');
      const readers = shared ? [cache, other] : [cache];
      for (const reader of readers) {
        expect(await reader.get('users:42')).toBe('root');
        expect(await reader.get(':users::42')).toBe('root, colon first');
        expect(await reader.namespace('users').get('admins:42')).toBe('users');
        expect(await reader.namespace('users').get(':admins::42')).toBe('users, colon first');
        expect(await reader.namespace('users').namespace('admins').get('42')).toBe('admins');
        expect(await reader.namespace('users').get('42')).toBe('users 42');
      }
      await users.clear();
      for (const reader of readers) {
        // The other instance's L1 is evicted by a bus message, a moment later.
        await vi.waitFor(
          async () => {
            expect(await reader.namespace('users').get('admins:42')).toBeUndefined();
            expect(await reader.namespace('users').namespace('admins').get('42')).toBeUndefined();
          },
          { timeout: 5_000 },
        );
        expect(await reader.get('users:42')).toBe('root');
        expect(await reader.get(':users::42')).toBe('root, colon first');
      }
      expect(await cache.deleteByTag('ns-space')).toBeGreaterThan(0);
      expect(await cache.get('users:42')).toBeUndefined();
    });

    it('delete and deleteMany resolve whether anything was deleted, in either tier', async () => {
      const cache = make();
      await cache.set('del:a', 1);
      await cache.set('del:b', null);
      expect(await cache.delete('del:a')).toBe(true);
      expect(await cache.delete('del:a')).toBe(false);
      expect(await cache.delete('del:never')).toBe(false);
      expect(await cache.deleteMany(['del:never', 'del:b'])).toBe(true);
      expect(await cache.deleteMany(['del:never', 'del:b'])).toBe(false);
      expect(await cache.deleteMany([])).toBe(false);
      if (shared) {
        // Only in L2 for this instance: another one wrote it.
        await make().set('del:elsewhere', 1);
        expect(await cache.delete('del:elsewhere')).toBe(true);
      }
    });

    it('pull returns the fresh value and deletes the key, in every tier', async () => {
      const cache = make();
      const other = shared ? make() : cache;
      // Subscribed to the bus: a cache not yet ready may miss the pull's invalidation.
      await other.ready();
      await cache.set('pull:a', { n: 1 });
      expect(await other.get('pull:a')).toEqual({ n: 1 });
      expect(await cache.pull('pull:a')).toEqual({ n: 1 });
      expect(await cache.get('pull:a')).toBeUndefined();
      await vi.waitFor(async () => expect(await other.get('pull:a')).toBeUndefined(), { timeout: 5_000 });
      expect(await cache.pull('pull:a')).toBeUndefined();
      expect(await cache.pull('pull:never')).toBeUndefined();
      expect(await cache.namespace('pull').pull('a')).toBeUndefined();
    });

    it('deleteByTag removes every tagged key and nothing else', async () => {
      const cache = make();
      await cache.set('p1', 1, { tags: ['products', 'p1'] });
      await cache.set('p2', 2, { tags: ['products'] });
      await cache.set('u1', 3, { tags: ['users'] });
      expect(await cache.deleteByTag('products')).toBeGreaterThanOrEqual(2);
      expect(await cache.getMany(['p1', 'p2', 'u1'])).toEqual([undefined, undefined, 3]);
      if (shared) {
        const other = make();
        expect(await other.get('p1')).toBeUndefined();
        expect(await other.get('u1')).toBe(3);
      }
    });

    it('getOrSet runs the factory once for concurrent misses and caches the result', async () => {
      const cache = make();
      let runs = 0;
      const factory = async () => {
        runs += 1;
        await delay(20);
        return { computed: true };
      };
      const results = await Promise.all(Array.from({ length: 50 }, () => cache.getOrSet('hot', factory)));
      expect(runs).toBe(1);
      expect(results.every((result) => result.computed)).toBe(true);
      expect(await cache.getOrSet('hot', factory)).toEqual({ computed: true });
      expect(runs).toBe(1);
    });

    it('getOrSet with forceFresh skips a fresh value in either tier, runs the factory and writes both tiers', async () => {
      // A frozen clock: the forced calls start in the millisecond the value they replace was written.
      const clock = new ManualClock(Date.now());
      const cache = make({ clock });
      const other = make({ clock });
      await cache.set('forced', 1);
      expect(await other.get('forced')).toBe(shared ? 1 : undefined);
      const factory = vi.fn(async () => 2);
      expect(await cache.getOrSet('forced', factory)).toBe(1);
      expect(factory).not.toHaveBeenCalled();
      expect(await cache.getOrSet('forced', factory, { forceFresh: true })).toBe(2);
      expect(factory).toHaveBeenCalledTimes(1);
      expect(cache.getLocal('forced')).toBe(l2Only ? undefined : 2);
      expect(await cache.get('forced')).toBe(2);
      if (shared) {
        // In L2 for a new instance, and the bus drops the other instance's old L1 copy.
        expect(await make().get('forced')).toBe(2);
        await vi.waitFor(async () => expect(await other.get('forced')).toBe(2));
        // From the other instance: the value reaches this one through L2 and the bus.
        expect(await other.getOrSet('forced', async () => 3, { forceFresh: true })).toBe(3);
        await vi.waitFor(async () => expect(await cache.getOrSet('forced', factory)).toBe(3));
        expect(factory).toHaveBeenCalledTimes(1);
      }
    });

    it('getOrSet with forceFresh stays single-flight: concurrent forced calls share one run, across instances too', async () => {
      const cache = make();
      // Polls L2 often: the waiter reads the old value there several times before the run ends.
      const other = make({ lock: { pollMs: 10 } });
      await cache.set('forced-flight', 'old');
      let runs = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const factory = async () => {
        runs += 1;
        await gate;
        return 'new';
      };
      const first = cache.getOrSet('forced-flight', factory, { forceFresh: true });
      await vi.waitFor(() => expect(runs).toBe(1), { timeout: 5_000 });
      const calls = [
        cache.getOrSet('forced-flight', factory, { forceFresh: true }),
        cache.getOrSet('forced-flight', factory, { forceFresh: true, hardTimeoutMs: 5_000 }),
      ];
      // The lease's waiter on another instance: L2 still holds the old value, fresh.
      if (shared) calls.push(other.getOrSet('forced-flight', factory, { forceFresh: true }));
      await delay(100);
      release();
      expect(await Promise.all([first, ...calls])).toEqual(Array(calls.length + 1).fill('new'));
      expect(runs).toBe(1);
      // Once done, a forced call runs the factory again.
      expect(await cache.getOrSet('forced-flight', async () => 'newer', { forceFresh: true })).toBe('newer');
    });

    it('a forced getOrSet does not join a plain load, nor a factory run that started before it', async () => {
      const cache = make();
      const fresh = make(); // an empty L1: its plain getOrSet reads L2 (shared) or runs its factory
      await cache.set('forced-join', 'old');
      const plainFactory = vi.fn(async () => 'plain');
      const forcedFactory = vi.fn(async () => 'forced');
      const plain = fresh.getOrSet('forced-join', plainFactory);
      const forced = fresh.getOrSet('forced-join', forcedFactory, { forceFresh: true });
      if (shared) {
        expect(await Promise.all([plain, forced])).toEqual(['old', 'forced']);
        expect(plainFactory).not.toHaveBeenCalled();
        expect(forcedFactory).toHaveBeenCalledTimes(1);
      } else {
        // The plain call's factory is running, but it started before the forced call: it may
        // have read the source before the change the forced call was made for (symfony#62328).
        // Joined, the forced call returned 'plain' (and 'plain' stayed cached until its TTL).
        expect(await Promise.all([plain, forced])).toEqual(['plain', 'forced']);
        expect(forcedFactory).toHaveBeenCalledTimes(1);
      }
      expect(await fresh.get('forced-join')).toBe('forced');
    });

    it('a forced getOrSet runs its own factory past a run that began before it; that run is not cached over it', async () => {
      // README "Forcing a refresh": after a webhook says the source changed, the forced call
      // returns and caches a value read after the call began, never the one a run already
      // going read before the change. Forced calls made once its run began share that run.
      const cache = make();
      let source = 'before';
      const gates: (() => void)[] = [];
      let runs = 0;
      const slow = async () => {
        runs += 1;
        const read = source;
        await new Promise<void>((resolve) => gates.push(resolve));
        return read;
      };
      // The old run ends last: its value must not overwrite the forced one.
      const plain = cache.getOrSet('forced-older', slow);
      await vi.waitFor(() => expect(runs).toBe(1));
      source = 'after';
      const forced = cache.getOrSet('forced-older', slow, { forceFresh: true });
      await vi.waitFor(() => expect(runs).toBe(2));
      const joiners = [
        cache.getOrSet('forced-older', slow, { forceFresh: true }),
        cache.getOrSet('forced-older', slow, { forceFresh: true, hardTimeoutMs: 5_000 }),
        cache.getOrSet('forced-older', slow),
      ];
      gates[1]!();
      expect(await forced).toBe('after');
      expect(await Promise.all(joiners)).toEqual(['after', 'after', 'after']);
      gates[0]!();
      // The older run's callers still get its value; the cache keeps the newer.
      expect(await plain).toBe('before');
      expect(runs).toBe(2);
      expect(await cache.get('forced-older')).toBe('after');
      if (shared) expect(await make().get('forced-older')).toBe('after');

      // The old run ends first: its value goes to its callers and is not cached either.
      await cache.delete('forced-older-2');
      source = 'before';
      const plain2 = cache.getOrSet('forced-older-2', slow);
      await vi.waitFor(() => expect(runs).toBe(3));
      source = 'after';
      const forced2 = cache.getOrSet('forced-older-2', slow, { forceFresh: true });
      await vi.waitFor(() => expect(runs).toBe(4));
      gates[2]!();
      expect(await plain2).toBe('before');
      expect(await cache.get('forced-older-2')).toBeUndefined();
      gates[3]!();
      expect(await forced2).toBe('after');
      expect(await cache.get('forced-older-2')).toBe('after');
    });

    it.skipIf(!shared)(
      "across instances, expire before a forced getOrSet keeps another instance's older run from answering it",
      async () => {
        // docs/get-or-set.md "Forcing a refresh": an expire before a forced call (the advice
        // while a forced call waited for another instance's lease holder) still works: it
        // supersedes that run everywhere, its value is not cached, its lease is released, and
        // the forced call runs the factory after the change.
        const a = make();
        const b = make({ lock: { pollMs: 10 } });
        await Promise.all([a.ready(), b.ready()]);
        let source = 'before';
        let runs = 0;
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const slow = async () => {
          runs += 1;
          const read = source;
          if (runs === 1) await gate;
          return read;
        };
        const plain = a.getOrSet('forced-remote', slow);
        await vi.waitFor(() => expect(runs).toBe(1));
        source = 'after';
        await b.expire('forced-remote');
        const forced = b.getOrSet('forced-remote', slow, { forceFresh: true });
        await delay(50);
        release();
        expect(await plain).toBe('before');
        expect(await forced).toBe('after');
        expect(runs).toBe(2);
        await vi.waitFor(async () => expect(await a.get('forced-remote')).toBe('after'));
        expect(await make().get('forced-remote')).toBe('after');
      },
    );

    it.skipIf(!shared)(
      "across instances, a forced getOrSet takes over another instance's older run, which ends first and is not cached",
      async () => {
        // docs/get-or-set.md "Forcing a refresh", across instances: the forced call takes the
        // plain holder's lease over and runs its factory; the older run's write is refused.
        const a = make();
        const b = make({ lock: { pollMs: 10 } });
        await Promise.all([a.ready(), b.ready()]);
        let source = 'before';
        let runs = 0;
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        let releaseForced!: () => void;
        const forcedGate = new Promise<void>((resolve) => {
          releaseForced = resolve;
        });
        const slow = async () => {
          runs += 1;
          const read = source;
          await (runs === 1 ? gate : forcedGate);
          return read;
        };
        const plain = a.getOrSet('forced-takeover', slow);
        await vi.waitFor(() => expect(runs).toBe(1));
        source = 'after';
        const forced = b.getOrSet('forced-takeover', slow, { forceFresh: true });
        await vi.waitFor(() => expect(runs).toBe(2));
        release();
        expect(await plain).toBe('before');
        releaseForced();
        expect(await forced).toBe('after');
        expect(runs).toBe(2);
        await vi.waitFor(async () => expect(await a.get('forced-takeover')).toBe('after'));
        expect(await make().get('forced-takeover')).toBe('after');
      },
    );

    it('getOrSet with forceFresh serves the value it replaces when its factory fails, from whichever tier holds it', async () => {
      // README "Forcing a refresh": the value the call replaces backs it as in grace. It was
      // served only from this instance's L1: one that only L2 held (written by another instance,
      // or by an L2-only cache, or in grace there) left the factory's error to the caller, and
      // the factory's context without it (bentocache#115 has the context half of this).
      const clock = new ManualClock(Date.now());
      const options = { clock, ttlMs: 60_000, graceMs: 60_000 };
      const cache = make(options);
      const seen: unknown[] = [];
      const failing = async (context: FactoryContext<string>): Promise<string> => {
        seen.push(context.staleValue);
        throw new Error('source down');
      };
      await cache.set('forced-fallback', 'mine');
      expect(await cache.getOrSet('forced-fallback', failing, { forceFresh: true })).toBe('mine');
      expect(seen).toEqual(['mine']);
      if (!shared) return;
      // Written by another instance: this one has no copy of its own.
      await make(options).set('forced-fallback-l2', 'theirs');
      expect(await make(options).getOrSet('forced-fallback-l2', failing, { forceFresh: true })).toBe(
        'theirs',
      );
      // In grace in L2 (expired, not yet dropped): served as after any failure.
      clock.advance(61_000);
      expect(await make(options).getOrSet('forced-fallback-l2', failing, { forceFresh: true })).toBe(
        'theirs',
      );
      expect(seen).toEqual(['mine', 'theirs', 'theirs']);
      // Past its grace nothing backs the call: the factory's error.
      clock.advance(60_000);
      await expect(
        make(options).getOrSet('forced-fallback-l2', failing, { forceFresh: true }),
      ).rejects.toBeInstanceOf(FactoryError);
    });

    it('a getOrSet joining a load in flight with timeouts of its own serves its value in grace, from whichever tier holds it', async () => {
      // README "Hard timeout": a caller finding the key's load in flight with other timeouts
      // joins it with its own, and its value in grace. The joiner had only this instance's L1
      // copy: one only L2 held (another instance's write, or no L1) backed the load's first
      // caller, not the joiner, which waited out its hard timeout and got its error.
      const clock = new ManualClock(Date.now());
      const options = { clock, ttlMs: 1_000, graceMs: 600_000 };
      const writer = make(options);
      const reader = shared ? make(options) : writer;
      const joinerOptions = { softTimeoutMs: 10, hardTimeoutMs: 1_000 };
      let release: ((value: string) => void) | undefined;
      let started = 0;
      const slow = () =>
        new Promise<string>((resolve) => {
          started += 1;
          release = resolve;
        });
      await writer.set('join-grace', 'old');
      await writer.set('join-grace-many', 'old');
      clock.advance(2_000);
      // getOrSet's load: the first caller has no timeouts, the joiner's soft timeout passes.
      const first = reader.getOrSet('join-grace', slow);
      await vi.waitFor(() => expect(started).toBe(1));
      await expect(reader.getOrSet('join-grace', slow, joinerOptions)).resolves.toBe('old');
      release?.('new');
      expect(await first).toBe('new');
      // getOrSetMany's load, joined by a getOrSet with timeouts.
      const batch = reader.getOrSetMany(
        ['join-grace-many'],
        () =>
          new Promise<string[]>((resolve) => {
            started += 1;
            release = (value) => resolve([value]);
          }),
      );
      await vi.waitFor(() => expect(started).toBe(2));
      await expect(reader.getOrSet('join-grace-many', slow, joinerOptions)).resolves.toBe('old');
      release?.('new');
      expect(await batch).toEqual(['new']);
    });

    it.skipIf(!shared)(
      "a getOrSet after another instance's delete does not join the load in flight: never the deleted value",
      async () => {
        // The load in flight serves its first caller the value in grace past its soft timeout;
        // a caller that asked after the delete was heard joined it and got that value too.
        const clock = new ManualClock(Date.now());
        const options = { clock, ttlMs: 1_000, graceMs: 600_000 };
        const cache = make(options);
        const other = make(options);
        await cache.set('joined-after-delete', 'old');
        clock.advance(2_000);
        let started = 0;
        const slow = () => {
          started += 1;
          return delay(600).then(() => 'older');
        };
        // Still waiting when the later call comes: it serves its value in grace at 300 ms.
        const first = cache.getOrSet('joined-after-delete', slow, { softTimeoutMs: 300 });
        await vi.waitFor(() => expect(started).toBe(1));
        const heard = new Promise<void>((resolve) => cache.onInvalidation(() => resolve()));
        await other.delete('joined-after-delete');
        await heard;
        const later = cache.getOrSet('joined-after-delete', () => delay(30).then(() => 'new'), {
          softTimeoutMs: 20,
          hardTimeoutMs: 5_000,
        });
        expect(await first).toBe('old');
        expect(await later).toBe('new');
      },
    );

    it('forceFresh must be a boolean (ConfigError naming it)', async () => {
      const cache = make();
      await expect(
        cache.getOrSet('forced-bad', async () => 1, { forceFresh: 'yes' as unknown as boolean }),
      ).rejects.toMatchObject({ code: 'NOA_CONFIG_INVALID' });
    });

    it('getOrSet caches nothing when the factory returns undefined', async () => {
      const cache = make();
      let runs = 0;
      const nothing = () => {
        runs += 1;
        return undefined;
      };
      expect(await cache.getOrSet('nothing', nothing)).toBeUndefined();
      expect(await cache.has('nothing')).toBe(false);
      expect(await cache.getOrSet('nothing', nothing)).toBeUndefined();
      expect(runs).toBe(2);
    });

    it('set and setMany refuse an undefined value with ConfigError naming it; the key stays as it was', async () => {
      const cache = make();
      const other = make();
      const fieldsOf = async (call: Promise<unknown>) => {
        const error = await call.then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).fields;
      };
      expect(await fieldsOf(cache.set('undef', undefined))).toEqual(['value']);
      expect(await cache.has('undef')).toBe(false);
      expect(await other.has('undef')).toBe(false);
      let runs = 0;
      expect(await cache.getOrSet('undef', () => (runs += 1))).toBe(1);
      expect(runs).toBe(1);
      await cache.set('kept', 'v');
      expect(await fieldsOf(cache.set('kept', undefined))).toEqual(['value']);
      expect(await cache.get('kept')).toBe('v');
      expect(
        await fieldsOf(
          cache.setMany([
            { key: 'many-a', value: 1 },
            { key: 'many-b', value: undefined },
          ]),
        ),
      ).toEqual(['1.value']);
      // Refused before anything is written.
      expect(await cache.has('many-a')).toBe(false);
      expect(
        await cache
          .namespace('ns')
          .set('undef', undefined)
          .catch((error: unknown) => error),
      ).toBeInstanceOf(ConfigError);
    });

    it('a function or symbol value is refused with SerializationError (nested too, with Redis); getOrSet returns it uncached', async () => {
      const cache = make();
      const other = make();
      const refused = async (key: string, value: unknown) => {
        const error = await cache.set(key, value).then(
          () => undefined,
          (caught: unknown) => caught,
        );
        expect(error, key).toBeInstanceOf(SerializationError);
        expect(await cache.has(key), key).toBe(false);
        expect(await other.has(key), key).toBe(false);
      };
      await refused('fn', () => 1);
      await refused('symbol', Symbol('s'));
      // Held by reference in memory, so nothing is lost there; msgpack and JSON would drop it.
      if (shared) await refused('nested-fn', { id: 1, onClick: () => 1 });
      const fn = () => 2;
      let runs = 0;
      const factory = () => {
        runs += 1;
        return fn;
      };
      expect(await cache.getOrSet('fn-factory', factory)).toBe(fn);
      expect(await cache.getOrSet('fn-factory', factory)).toBe(fn);
      expect(runs).toBe(2);
      expect(await other.has('fn-factory')).toBe(false);
    });

    it('deleteByTag of a tag a key was rewritten without: kept in memory, deleted from both tiers with Redis', async () => {
      const cache = make();
      await cache.set('retagged', 'old', { tags: ['before'] });
      await cache.set('retagged', 'new');
      // L1's tag index follows each entry's own tags; Redis's tag set still names the key, and
      // deleteByTag reads its value to find it no longer carries the tag.
      expect(await cache.deleteByTag('before')).toBe(0);
      expect(await cache.get('retagged')).toBe('new');
      if (shared) expect(await make().get('retagged')).toBe('new');
    });

    it.skipIf(!shared)(
      'deleteByTag spares a key another instance rewrote without the tag: every instance serves the rewrite',
      async () => {
        const a = make();
        const b = make();
        await Promise.all([a.ready(), b.ready()]);
        /** Resolves once `cache` has applied another instance's write of the key. */
        const written = (cache: Cache) =>
          new Promise<void>((resolve) => {
            const stop = cache.onInvalidation((message) => {
              if (message.t === 'set' && message.k.includes('rewrite:k')) {
                stop();
                resolve();
              }
            });
          });
        // Each write's message is applied before the next write: b's own v2 stays in its L1.
        const first = written(b);
        await a.set('rewrite:k', 'v1', { tags: ['rewrite:T'] });
        await first;
        const second = written(a);
        await b.set('rewrite:k', 'v2');
        await second;
        expect(await held(b, 'rewrite:k')).toBe('v2');
        expect(await a.deleteByTag('rewrite:T')).toBe(0);
        expect(await held(b, 'rewrite:k')).toBe('v2');
        expect(await a.get('rewrite:k')).toBe('v2');
        expect(await make().get('rewrite:k')).toBe('v2');
        // The key tagged again is deleted everywhere, by the same call.
        await b.set('rewrite:k', 'v3', { tags: ['rewrite:T'] });
        const evicted = new Promise<void>((resolve) => {
          const stop = b.onInvalidation((message) => {
            if (message.t === 'tag') {
              stop();
              resolve();
            }
          });
        });
        expect(await a.deleteByTag('rewrite:T')).toBe(1);
        await evicted;
        expect(await held(b, 'rewrite:k')).toBeUndefined();
        expect(await make().get('rewrite:k')).toBeUndefined();
      },
    );

    it('deleteByTag removes entries outright: has() is false and grace serves no stale value', async () => {
      // Both are open bugs of peers (bentocache #64 and #71): a tag deletion that only marks
      // entries stale keeps them visible to has() and to getOrSet's grace.
      const cache = make({ graceMs: 60_000 });
      expect(await cache.getOrSet('graced', () => 'v1', { tags: ['g'], ttlMs: 60_000 })).toBe('v1');
      await cache.deleteByTag('g');
      expect(await cache.has('graced')).toBe(false);
      const failing = () => Promise.reject(new Error('source down'));
      await expect(cache.getOrSet('graced', failing)).rejects.toBeInstanceOf(FactoryError);
      expect(await cache.getOrSet('graced', () => 'v2')).toBe('v2');
    });

    it('deleteByTag still finds a key without expiry after a short-lived key with the same tag expired', async () => {
      const cache = make();
      await cache.set('forever', 'kept until deleted', { tags: ['mixed'] });
      await cache.set('brief', 'gone soon', { tags: ['mixed'], ttlMs: 20 });
      await delay(100); // Redis expires on its own clock: the brief key, and with it, wrongly, the tag set
      expect(await cache.deleteByTag('mixed')).toBeGreaterThanOrEqual(1);
      // A fresh instance (empty L1) sees what is left in L2.
      const reader = shared ? make() : cache;
      expect(await reader.get('forever')).toBeUndefined();
    });

    itWithL1(
      'the clearing instance keeps in L1 only what L2 still holds once its clear returns',
      'an L2-only cache keeps nothing in L1',
      async () => {
        const writer = make();
        const keys = Array.from({ length: 3_000 }, (_, index) => `k${index}`);
        await writer.namespace('during-clear').setMany(keys.map((key) => ({ key, value: key })));
        const clearer = (shared ? make() : writer).namespace('during-clear');
        const done = clearer.clear();
        // Reads while the clear's pages go on: L1 takes what L2 still holds at that moment.
        await clearer.getMany(keys);
        await done;
        const local = keys.filter((key) => clearer.getLocal(key) !== undefined);
        const fresh = (shared ? make() : writer).namespace('during-clear');
        const inL2 = (await fresh.getMany(local)).filter((value) => value !== undefined);
        expect(inL2.length).toBe(local.length);
      },
    );

    it('clear of a namespace whose name holds glob characters clears that namespace alone', async () => {
      const cache = make();
      const names = ['a*', 'a?', '[ab]', 'a\\', 'ab', 'a', 'b', 'a\\b'];
      for (const name of names) await cache.namespace(name).set('k', name);
      await cache.namespace('a*').clear();
      await cache.namespace('[ab]').clear();
      await cache.namespace('a\\').clear();
      const left = await Promise.all(names.map((name) => cache.namespace(name).get('k')));
      expect(left).toEqual([undefined, 'a?', undefined, undefined, 'ab', 'a', 'b', 'a\\b']);
    });

    it("tags are a namespace's own (as bentocache): deleteByTag and expireByTag through one namespace leave other namespaces' and the root's entries", async () => {
      const cache = make();
      const tenantA = cache.namespace('tenant-a');
      const tenantB = cache.namespace('tenant-b');
      await tenantA.set('1', 'a1', { tags: ['products'] });
      await tenantA.set('2', 'a2', { tags: ['products'] });
      await tenantB.set('1', 'b1', { tags: ['products'] });
      await cache.set('scoped-root', 'root', { tags: ['products'] });
      expect(await tenantA.deleteByTag('products')).toBe(2);
      expect(await tenantA.getMany(['1', '2'])).toEqual([undefined, undefined]);
      expect(await tenantB.get('1')).toBe('b1');
      expect(await cache.get('scoped-root')).toBe('root');
      if (shared) {
        // Another instance: its L1 heard of the scoped tag only, L2 lost only tenant a's keys.
        const other = make();
        expect(await other.namespace('tenant-a').get('1')).toBeUndefined();
        expect(await other.namespace('tenant-b').get('1')).toBe('b1');
      }
      expect(await tenantB.expireByTag('products')).toBe(1);
      expect(await tenantB.get('1')).toBeUndefined();
      expect(await cache.get('scoped-root')).toBe('root');
      expect(await cache.deleteByTag('products')).toBe(1);
      expect(await cache.get('scoped-root')).toBeUndefined();
    });

    it("tagScope: 'global': deleteByTag through one namespace removes tagged keys of every namespace", async () => {
      const cache = make({ tagScope: 'global' });
      await cache.namespace('users').set('1', 'alice', { tags: ['tenant:9'] });
      await cache.namespace('posts').set('1', 'hello', { tags: ['tenant:9'] });
      await cache.namespace('posts').set('2', 'kept');
      expect(await cache.namespace('posts').deleteByTag('tenant:9')).toBeGreaterThanOrEqual(2);
      expect(await cache.namespace('users').get('1')).toBeUndefined();
      expect(await cache.namespace('posts').getMany(['1', '2'])).toEqual([undefined, 'kept']);
    });

    it('getOrSet wraps factory failures in FactoryError and caches nothing', async () => {
      const cache = make();
      const failure = new Error('db down');
      await expect(
        cache.getOrSet('broken', () => {
          throw failure;
        }),
      ).rejects.toMatchObject({ code: 'NOA_CACHE_FACTORY_FAILED', cause: failure });
      await expect(cache.getOrSet('broken', () => Promise.reject(failure))).rejects.toBeInstanceOf(
        FactoryError,
      );
      expect(await cache.get('broken')).toBeUndefined();
    });

    it('the factory context sets ttl, grace and tags from the computed value', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, ttlMs: 3_600_000 });
      const load = (live: boolean) =>
        cache.getOrSet(live ? 'score:live' : 'score:final', (ctx) => {
          ctx.setOptions({ ttlMs: live ? 1_000 : 60_000, tags: ['scores'] });
          ctx.setOptions({ graceMs: 30_000 }); // merged with the first call, field by field
          return { live };
        });
      await Promise.all([load(true), load(false)]);
      clock.advance(1_000);
      // The live score expired after the factory's 1 s, the final one did not (the cache's
      // default of an hour applied to neither).
      expect(await cache.getMany(['score:live', 'score:final'])).toEqual([undefined, { live: false }]);
      // The grace the factory chose serves the stale value when the source fails.
      expect(await cache.getOrSet('score:live', () => Promise.reject(new Error('down')))).toEqual({
        live: true,
      });
      // The tags it chose reach every instance.
      const other = shared ? make({ clock }) : cache;
      expect(await other.deleteByTag('scores')).toBeGreaterThanOrEqual(1);
      expect(await (shared ? make({ clock }) : cache).get('score:final')).toBeUndefined();
    });

    it('a field the factory context sets to undefined is not set: the call’s (or an earlier set) stands', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock });
      const maybeTtl: number | undefined = undefined; // e.g. a TTL the source did not send
      await cache.getOrSet(
        'ctx:undefined',
        (ctx) => {
          ctx.setOptions({ ttlMs: maybeTtl, tags: undefined });
          return 'v';
        },
        { ttlMs: 1_000, tags: ['ctx-undefined'] },
      );
      // The call's tags still tag it.
      expect(await cache.deleteByTag('ctx-undefined')).toBeGreaterThanOrEqual(1);
      expect(await cache.get('ctx:undefined')).toBeUndefined();
      await cache.getOrSet(
        'ctx:undefined',
        (ctx) => {
          ctx.setOptions({ graceMs: 60_000 });
          ctx.setOptions({ ttlMs: maybeTtl, graceMs: undefined });
          return 'v';
        },
        { ttlMs: 1_000 },
      );
      clock.advance(1_000);
      // The call's 1 s TTL, not the cache's default (none: cached for ever)...
      expect(await cache.get('ctx:undefined')).toBeUndefined();
      // ...and the grace of the earlier setOptions (the cache's default is none).
      expect(await cache.getOrSet('ctx:undefined', () => Promise.reject(new Error('down')))).toBe('v');
    });

    it('the factory context can decline caching: the value is returned, not stored', async () => {
      const cache = make();
      let runs = 0;
      const search = (ctx: FactoryContext<string[]>) => {
        runs += 1;
        const hits: string[] = [];
        if (hits.length === 0) ctx.skip();
        return hits;
      };
      expect(await cache.getOrSet('search:nothing', search)).toEqual([]);
      expect(await cache.getOrSet('search:nothing', search)).toEqual([]);
      expect(runs).toBe(2);
      expect(await (shared ? make() : cache).has('search:nothing')).toBe(false);
    });

    it('the factory sees the stale value and can revalidate it', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000 });
      const seen: unknown[] = [];
      const revalidate = (ctx: FactoryContext<{ etag: string; body: string }>) => {
        seen.push(ctx.staleValue);
        // The source answers "not modified": keep the stale body, fresh again for a minute.
        if (ctx.staleValue?.etag === 'v1') {
          ctx.setOptions({ ttlMs: 60_000 });
          return ctx.staleValue;
        }
        return { etag: 'v1', body: 'page' };
      };
      await cache.getOrSet('page', revalidate, { ttlMs: 1_000 });
      clock.advance(2_000);
      expect(await cache.getOrSet('page', revalidate)).toEqual({ etag: 'v1', body: 'page' });
      expect(seen).toEqual([undefined, { etag: 'v1', body: 'page' }]);
      clock.advance(30_000);
      expect(await (shared ? make({ clock }) : cache).get('page')).toEqual({ etag: 'v1', body: 'page' });
    });

    it('bad options set through the context reject with ConfigError naming the field, never stale', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000 });
      await cache.set('conf', 'old', { ttlMs: 1_000 });
      clock.advance(2_000);
      const error = await cache
        .getOrSet('conf', (ctx) => {
          ctx.setOptions({ ttlMs: -5, tags: 'not-a-list' as unknown as string[] });
          return 'new';
        })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).fields.sort()).toEqual(['tags', 'ttlMs']);
      expect((error as ConfigError).message).toContain('factory context');
      expect(await (shared ? make({ clock }) : cache).get('conf')).toBeUndefined();
    });

    it('wrap passes the factory context as `this`, leaving the arguments alone', async () => {
      const cache = make();
      const lookup = cache.wrap(
        async function (this: FactoryContext<string | null>, id: string, fallback?: string) {
          if (id === 'missing') {
            this.skip();
            return fallback ?? null;
          }
          this.setOptions({ tags: [`row:${id}`] });
          return `row ${id}`;
        },
        (id: string, _fallback?: string) => `row:${id}`,
      );
      expect(await lookup('missing')).toBeNull();
      expect(await lookup('missing', 'default')).toBe('default');
      expect(await lookup('7')).toBe('row 7');
      expect(await cache.has('row:missing')).toBe(false);
      expect(await cache.deleteByTag('row:7')).toBeGreaterThanOrEqual(1);
      expect(await cache.has('row:7')).toBe(false);
    });

    it('events report hits by tier, misses, writes, deletes and clears, until unsubscribed', async () => {
      const cache = make();
      const seen: string[] = [];
      const stops = [
        cache.on('hit', ({ key, tier }) => seen.push(`hit ${tier} ${key}`)),
        cache.on('miss', ({ key }) => seen.push(`miss ${key}`)),
        cache.on('set', ({ key }) => seen.push(`set ${key}`)),
        cache.on('delete', ({ key }) => seen.push(`delete ${key}`)),
        cache.on('clear', ({ prefix }) => seen.push(`clear ${prefix}`)),
      ];
      await cache.set('ev:a', 1, { tags: ['ev'] });
      await cache.get('ev:a');
      await cache.getMany(['ev:a', 'ev:none']);
      await cache.getOrSet('ev:b', () => 2);
      await cache.getOrSet('ev:b', () => 2);
      await cache.namespace('ns').get('k');
      await cache.delete('ev:b');
      await cache.deleteByTag('ev');
      await cache.namespace('ns').clear();
      expect(seen).toEqual([
        'set ev:a',
        `hit ${ownTier} ev:a`,
        `hit ${ownTier} ev:a`,
        'miss ev:none',
        'miss ev:b',
        'set ev:b',
        `hit ${ownTier} ev:b`,
        'miss :ns::k',
        'delete ev:b',
        'delete ev:a',
        'clear :ns:',
      ]);
      if (shared) {
        const other = make();
        other.on('hit', ({ key, tier }) => seen.push(`other hit ${tier} ${key}`));
        await cache.set('ev:c', 3);
        await other.get('ev:c');
        expect(seen.at(-1)).toBe('other hit l2 ev:c');
      }
      for (const stop of stops) stop();
      const before = seen.length;
      await cache.set('ev:d', 4);
      await cache.get('ev:d');
      await cache.get('ev:none');
      expect(seen.length).toBe(before);
    });

    it('a listener that changes its key in reaction to set, delete, expire, a tag event or clear keeps its change in every tier', async () => {
      const cache = make({ graceMs: 60_000 });
      const reactions: Promise<unknown>[] = [];
      const reactTo = (key: string, reaction: () => Promise<unknown>) => {
        let done = false;
        return ({ key: seen }: { key: string }) => {
          if (seen !== key || done) return;
          done = true;
          reactions.push(reaction());
        };
      };
      cache.on(
        'set',
        reactTo('react:set', () => cache.delete('react:set')),
      );
      cache.on(
        'delete',
        reactTo('react:del', () => cache.set('react:del', 'after')),
      );
      cache.on(
        'expire',
        reactTo('react:exp', () => cache.set('react:exp', 'fresh')),
      );
      cache.on(
        'delete',
        reactTo('react:tagdel', () => cache.set('react:tagdel', 'after', { tags: ['react'] })),
      );
      cache.on(
        'expire',
        reactTo('react:tagexp', () => cache.set('react:tagexp', 'fresh', { tags: ['react-exp'] })),
      );
      cache.on('clear', ({ prefix }) => {
        if (prefix === ':react-ns:') reactions.push(cache.namespace('react-ns').set('k', 'after'));
      });
      await cache.set('react:set', 'v');
      await cache.set('react:del', 'before');
      await cache.delete('react:del');
      await cache.set('react:exp', 'old');
      await cache.expire('react:exp');
      await cache.set('react:tagdel', 'before', { tags: ['react'] });
      await cache.deleteByTag('react');
      await cache.set('react:tagexp', 'old', { tags: ['react-exp'] });
      await cache.expireByTag('react-exp');
      await cache.namespace('react-ns').set('k', 'before');
      await cache.namespace('react-ns').clear();
      await Promise.all(reactions);
      expect(reactions).toHaveLength(6);
      const readers = shared ? [cache, make()] : [cache];
      for (const reader of readers) {
        expect(await reader.get('react:set')).toBeUndefined();
        expect(await reader.get('react:del')).toBe('after');
        expect(await reader.get('react:tagdel')).toBe('after');
        expect(await reader.namespace('react-ns').get('k')).toBe('after');
        // Fresh: a stale value would be recomputed.
        expect(await reader.getOrSet('react:exp', () => 'recomputed')).toBe('fresh');
        expect(await reader.getOrSet('react:tagexp', () => 'recomputed')).toBe('fresh');
      }
    });

    it('events report factory errors and stale values served, with the reason', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, graceBackoffMs: 0 });
      const failures: unknown[] = [];
      const stale: string[] = [];
      cache.on('factory-error', ({ key, error }) => failures.push([key, (error as Error).message]));
      cache.on('stale', ({ key, reason }) => stale.push(`${key} ${reason}`));
      await cache.getOrSet('ev:flaky', () => 'v1', { ttlMs: 1_000 });
      clock.advance(2_000);
      expect(await cache.getOrSet('ev:flaky', () => Promise.reject(new Error('down')))).toBe('v1');
      await expect(
        cache.getOrSet('ev:never', () => Promise.reject(new Error('gone'))),
      ).rejects.toBeInstanceOf(FactoryError);
      expect(failures).toEqual([
        ['ev:flaky', 'down'],
        ['ev:never', 'gone'],
      ]);
      expect(stale).toEqual(['ev:flaky factory_error']);
    });

    it('a throwing listener does not break the call; an unknown event name is refused', async () => {
      const cache = make();
      cache.on('set', () => {
        throw new Error('listener bug');
      });
      await cache.set('ev:safe', 'ok');
      expect(await cache.get('ev:safe')).toBe('ok');
      expect(() => cache.on('hits' as 'hit', () => {})).toThrow(ConfigError);
    });

    it('an async listener that rejects is logged like a throwing one, never an unhandled rejection', async () => {
      // A listener typed `() => void` may be an async function: its rejection escaped the
      // try/catch around the call, and Node's default unhandled-rejection mode ends the process.
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const logger = recordingLogger();
      try {
        const cache = make({ logger });
        cache.on('set', async () => {
          await Promise.resolve();
          throw new Error('async listener bug');
        });
        await cache.set('ev:async-listener', 'ok');
        // Rejections are reported as unhandled after the microtask queue drains.
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(unhandled).toEqual([]);
        expect(logger.messages('warn')).toContain('a cache event listener threw');
        expect(await cache.get('ev:async-listener')).toBe('ok');
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    it.skipIf(!shared)('events report invalidations received over the bus', async () => {
      const a = make();
      const b = make();
      await Promise.all([a.ready(), b.ready()]);
      const received = new Promise<string>((resolve) => {
        const stop = b.on('invalidation', (message) => {
          if (message.t === 'del' && message.k.includes('ev:bus')) {
            stop();
            resolve(message.o);
          }
        });
      });
      await a.set('ev:bus', 1);
      await a.delete('ev:bus');
      expect(typeof (await received)).toBe('string');
    });

    it('getOrSetMany reads what is cached and calls the factory once for the rest, aligned with the keys', async () => {
      const cache = make();
      await cache.set('many:a', 'A');
      const calls: string[][] = [];
      const loadMany = async (keys: readonly string[]) => {
        calls.push([...keys]);
        return keys.map((key) => key.toUpperCase());
      };
      expect(await cache.getOrSetMany(['many:a', 'many:b', 'many:c', 'many:b'], loadMany)).toEqual([
        'A',
        'MANY:B',
        'MANY:C',
        'MANY:B',
      ]);
      expect(calls).toEqual([['many:b', 'many:c']]);
      // Cached in every tier: a fresh instance reads them without calling its factory.
      const reader = shared ? make() : cache;
      expect(await reader.getOrSetMany(['many:c', 'many:b', 'many:a'], loadMany)).toEqual([
        'MANY:C',
        'MANY:B',
        'A',
      ]);
      expect(calls).toHaveLength(1);
      // Namespaced keys reach the factory without the namespace.
      const seen: string[][] = [];
      await cache.namespace('ns').getOrSetMany(['k'], (keys) => {
        seen.push([...keys]);
        return new Map([['k', 1]]);
      });
      expect(seen).toEqual([['k']]);
      expect(await cache.namespace('ns').get('k')).toBe(1);
    });

    it('getOrSetMany caches nothing for keys the factory leaves out, and a misaligned result is a FactoryError', async () => {
      const cache = make();
      const partial = await cache.getOrSetMany(['part:1', 'part:2'], () => new Map([['part:1', 'one']]));
      expect(partial).toEqual(['one', undefined]);
      expect(await (shared ? make() : cache).getMany(['part:1', 'part:2'])).toEqual(['one', undefined]);
      const error = await cache
        .getOrSetMany(['bad:1', 'bad:2'], () => ['only one'])
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(FactoryError);
      expect(String((error as FactoryError).cause)).toContain('1 values for 2 keys');
      // The message names the problem, not only the first key.
      expect((error as FactoryError).message).toMatch(/bad:1.*returned 1 values for 2 keys/);
      const shape = await cache
        .getOrSetMany(['shape:1'], () => 'neither' as unknown as string[])
        .catch((caught: unknown) => caught);
      expect((shape as FactoryError).message).toMatch(/must return a Map or an array/);
      expect(await cache.has('bad:1')).toBe(false);
    });

    it('getOrSetMany and getOrSet share flights: a key being computed is awaited, not recomputed', async () => {
      const cache = make();
      let singleRuns = 0;
      const slowSingle = cache.getOrSet('fl:1', async () => {
        singleRuns += 1;
        await delay(50);
        return 'from getOrSet';
      });
      const batches: string[][] = [];
      // The batch computes until the joiner has been called: on a loaded machine a fixed delay
      // could start the joiner before the batch's factory did, or end the batch before it.
      let batchStarted!: () => void;
      const started = new Promise<void>((resolve) => {
        batchStarted = resolve;
      });
      let releaseBatch!: () => void;
      const released = new Promise<void>((resolve) => {
        releaseBatch = resolve;
      });
      const many = cache.getOrSetMany(['fl:1', 'fl:2'], async (keys) => {
        batches.push([...keys]);
        batchStarted();
        await released;
        return keys.map((key) => `batch ${key}`);
      });
      // And the other way round: once the batch computes fl:2, getOrSet joins its flight.
      await started;
      const joiner = cache.getOrSet('fl:2', () => {
        singleRuns += 1;
        return 'recomputed';
      });
      await delay(20);
      releaseBatch();
      expect(await many).toEqual(['from getOrSet', 'batch fl:2']);
      expect(await slowSingle).toBe('from getOrSet');
      expect(await joiner).toBe('batch fl:2');
      expect(batches).toEqual([['fl:2']]);
      expect(singleRuns).toBe(1);
    });

    it('getOrSetMany serves values in grace when the factory fails, FactoryError without one', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, graceBackoffMs: 0 });
      await cache.set('gr:old', 'old', { ttlMs: 1_000 });
      clock.advance(2_000);
      const failing = () => Promise.reject(new Error('source down'));
      const error = await cache
        .getOrSetMany(['gr:old', 'gr:new'], failing)
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(FactoryError);
      expect((error as FactoryError).cause).toMatchObject({ message: 'source down' });
      expect(await cache.getOrSetMany(['gr:old'], failing)).toEqual(['old']);
    });

    it('getOrSetMany whose factory fails rejects with FactoryError carrying the values it resolved (error.partial)', async () => {
      // ehcache3#225: the hits of a batch whose loader failed were lost with the rejection; the
      // caller had to read them again. They ride on the error, keyed by the caller's keys.
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, graceBackoffMs: 0 });
      await cache.set('part:hit', 'hit');
      await cache.set('part:old', 'old', { ttlMs: 1_000 });
      clock.advance(2_000);
      await cache.set('part:hit2', { n: 2 });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let called = 0;
      const failing = async (): Promise<string[]> => {
        called += 1;
        await gate;
        throw new Error('source down');
      };
      const batch = cache
        .getOrSetMany(['part:hit', 'part:new', 'part:old', 'part:hit', 'part:hit2', 'part:new2'], failing)
        .catch((caught: unknown) => caught);
      await vi.waitFor(() => expect(called).toBe(1));
      // A getOrSet joining the batch's flight of a failing key gets its own error, without partial.
      const joiner = cache.getOrSet('part:new', async () => 'never').catch((caught: unknown) => caught);
      release();
      const error = await batch;
      expect(error).toBeInstanceOf(FactoryError);
      const failed = error as FactoryError;
      expect(failed.code).toBe('NOA_CACHE_FACTORY_FAILED');
      expect(failed.details.key).toBe('part:new');
      expect(failed.cause).toMatchObject({ message: 'source down' });
      // The hits and the value in grace; not the keys that failed.
      expect(failed.partial).toEqual(
        new Map<string, unknown>([
          ['part:hit', 'hit'],
          ['part:old', 'old'],
          ['part:hit2', { n: 2 }],
        ]),
      );
      expect(JSON.stringify(failed)).not.toContain('hit2');
      const joined = await joiner;
      expect(joined).toBeInstanceOf(FactoryError);
      expect((joined as FactoryError).partial).toBeUndefined();
      // A getOrSet's own failure carries none either.
      const single = await cache
        .getOrSet('part:none', () => Promise.reject(new Error('down')))
        .catch((caught: unknown) => caught);
      expect((single as FactoryError).partial).toBeUndefined();
    });

    it.skipIf(!shared)(
      'getOrSetMany across instances: keys leased by another instance are awaited, not recomputed',
      async () => {
        const a = make();
        const b = make();
        await Promise.all([a.ready(), b.ready()]);
        const computed: string[] = [];
        const loader = (label: string) => async (keys: readonly string[]) => {
          computed.push(...keys);
          await delay(150);
          return keys.map((key) => `${label} ${key}`);
        };
        const first = a.getOrSetMany(['x:1', 'x:2', 'x:3'], loader('a'));
        await delay(40); // a holds the leases of x:1..3 and is computing
        const second = b.getOrSetMany(['x:2', 'x:3', 'x:4'], loader('b'));
        expect(await first).toEqual(['a x:1', 'a x:2', 'a x:3']);
        expect(await second).toEqual(['a x:2', 'a x:3', 'b x:4']);
        expect(computed.sort()).toEqual(['x:1', 'x:2', 'x:3', 'x:4']);
      },
    );

    it('wrap memoises by key', async () => {
      const cache = make();
      let calls = 0;
      const square = cache.wrap(
        async (n: number) => {
          calls += 1;
          return n * n;
        },
        (n) => `square:${n}`,
      );
      expect(await square(4)).toBe(16);
      expect(await square(4)).toBe(16);
      expect(await square(5)).toBe(25);
      expect(calls).toBe(2);
    });

    it('warm loads missing keys with progress and skips cached ones', async () => {
      const cache = make();
      await cache.set('w1', 'cached');
      const seen: number[] = [];
      const report = await cache.warm(['w1', 'w2', 'w3', 'w4'], async (key) => `loaded ${key}`, {
        concurrency: 2,
        onProgress: (progress) => seen.push(progress.done),
      });
      expect(report).toEqual({ total: 4, done: 4, loaded: 3, skipped: 1, failed: 0 });
      expect(seen.sort()).toEqual([1, 2, 3, 4]);
      expect(await cache.get('w3')).toBe('loaded w3');
      expect(await cache.get('w1')).toBe('cached');
    });

    it('warm runs at most `concurrency` loaders at once and counts failures without throwing', async () => {
      const cache = make();
      let inFlight = 0;
      let most = 0;
      const keys = Array.from({ length: 12 }, (_, index) => `lane:${index}`);
      const report = await cache.warm(
        keys,
        async (key) => {
          inFlight += 1;
          most = Math.max(most, inFlight);
          // Long enough for the next loaders to start: 5 ms ended before them on a loaded machine.
          await delay(100);
          inFlight -= 1;
          if (key.endsWith(':7')) throw new Error('source down');
          return key;
        },
        { concurrency: 3 },
      );
      expect(most).toBe(3);
      expect(report).toEqual({ total: 12, done: 12, loaded: 11, skipped: 0, failed: 1 });
      expect(await cache.get('lane:7')).toBeUndefined();
    });

    it('warm counts a key whose loader failed as failed, though getOrSet served its value in grace', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, graceBackoffMs: 0 });
      await cache.set('warm:graced', 'old', { ttlMs: 100 });
      clock.advance(200);
      const report = await cache.warm(['warm:graced', 'warm:new'], (key) => {
        if (key === 'warm:graced') throw new Error('source down');
        return key;
      });
      expect(report).toEqual({ total: 2, done: 2, loaded: 1, skipped: 0, failed: 1 });
      expect(await cache.get('warm:graced')).toBeUndefined();
    });

    it('warm settles once a slow load is done, not when a soft timeout served the value in grace', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, softTimeoutMs: 10 });
      await cache.set('warm:slow', 'old', { ttlMs: 100 });
      clock.advance(200);
      const report = await cache.warm(['warm:slow'], async () => {
        await delay(100);
        return 'new';
      });
      expect(report).toEqual({ total: 1, done: 1, loaded: 1, skipped: 0, failed: 0 });
      expect(await cache.get('warm:slow')).toBe('new');
    });

    it('warm waits for a load a soft timeout left running no longer than the cache’s hardTimeoutMs', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, graceMs: 60_000, softTimeoutMs: 10, hardTimeoutMs: 50 });
      await cache.set('warm:hanging', 'old', { ttlMs: 100 });
      clock.advance(200);
      const report = await cache.warm(['warm:hanging'], async () => {
        await delay(2_000); // far past the hard timeout
        return 'late';
      });
      expect(report).toEqual({ total: 1, done: 1, loaded: 0, skipped: 0, failed: 1 });
    });

    it('warm keeps going when onProgress throws: the error is logged, every key is loaded', async () => {
      const logger = recordingLogger();
      const cache = make({ logger });
      const keys = Array.from({ length: 6 }, (_, index) => `progress-throws:${index}`);
      let loads = 0;
      const report = await cache.warm(
        keys,
        async (key) => {
          loads += 1;
          await delay(2);
          return key;
        },
        {
          concurrency: 2,
          onProgress: ({ done }) => {
            if (done === 2) throw new Error('progress bar broke');
          },
        },
      );
      expect(report).toEqual({ total: 6, done: 6, loaded: 6, skipped: 0, failed: 0 });
      expect(loads).toBe(6);
      expect(await cache.getMany(keys)).toEqual(keys);
      expect(logger.entriesAt('warn').filter(({ message }) => message.startsWith('warm'))).toEqual([
        {
          level: 'warn',
          message: 'warm onProgress threw; warming goes on',
          fields: expect.objectContaining({ error: 'Error: progress bar broke' }),
        },
      ]);
    });

    /** A loader whose calls each wait until released, recording the keys it was called with. */
    const gatedLoader = () => {
      const called: string[] = [];
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      let started!: () => void;
      const twoStarted = new Promise<void>((resolve) => (started = resolve));
      const loader = async (key: string) => {
        called.push(key);
        if (called.length === 2) started();
        await gate;
        return `loaded ${key}`;
      };
      return { called, loader, twoStarted, open };
    };

    it('warm stops at an aborted signal: no new loads, in-flight ones abandoned, rejects with the report so far', async () => {
      const cache = make();
      const keys = Array.from({ length: 6 }, (_, index) => `abort:${index}`);
      const { called, loader, twoStarted, open } = gatedLoader();
      const controller = new AbortController();
      const progress: number[] = [];
      const warming = cache.warm(keys, loader, {
        concurrency: 2,
        signal: controller.signal,
        onProgress: ({ done }) => progress.push(done),
      });
      await twoStarted;
      const reason = new Error('shutting down');
      controller.abort(reason);
      // Settles while both loaders are still held: in-flight loads are not waited for.
      const error = await warming.catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(WarmAbortedError);
      expect(error).toMatchObject({
        code: 'NOA_CACHE_WARM_ABORTED',
        cause: reason,
        report: { total: 6, done: 0, loaded: 0, skipped: 0, failed: 0 },
      });
      open();
      // The abandoned loads still finish and are cached (a getOrSet joins their flight).
      expect(await cache.getOrSet('abort:0', () => 'not called')).toBe('loaded abort:0');
      expect(await cache.getOrSet('abort:1', () => 'not called')).toBe('loaded abort:1');
      await delay(20);
      expect(called.sort()).toEqual(['abort:0', 'abort:1']);
      expect(progress).toEqual([]);
      expect(await cache.get('abort:2')).toBeUndefined();
    });

    it('warm with an already aborted signal rejects at once and loads nothing', async () => {
      const cache = make();
      let loads = 0;
      const reason = new Error('too late');
      const error = await cache
        .warm(['pre-aborted'], () => (loads += 1), { signal: AbortSignal.abort(reason) })
        .catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(WarmAbortedError);
      expect(error).toMatchObject({ cause: reason, report: { total: 1, done: 0 } });
      expect(loads).toBe(0);
      // A signal aborted after warm settled changes nothing.
      const controller = new AbortController();
      const report = await cache.warm(['post-aborted'], (key) => key, { signal: controller.signal });
      controller.abort();
      expect(report).toEqual({ total: 1, done: 1, loaded: 1, skipped: 0, failed: 0 });
    });

    it('warm ends when the cache closes mid-warm: rejects with the report so far, ClosedError as cause', async () => {
      const cache = make();
      const keys = Array.from({ length: 5 }, (_, index) => `closing:${index}`);
      const { called, loader, twoStarted, open } = gatedLoader();
      const warming = cache.warm(keys, loader, { concurrency: 2 });
      await twoStarted;
      const closed = cache.close();
      const error = await warming.catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(WarmAbortedError);
      expect((error as WarmAbortedError).cause).toBeInstanceOf(ClosedError);
      expect((error as WarmAbortedError).report).toEqual({
        total: 5,
        done: 0,
        loaded: 0,
        skipped: 0,
        failed: 0,
      });
      open();
      await closed;
      await delay(20);
      expect(called.sort()).toEqual(['closing:0', 'closing:1']);
    });

    it.skipIf(!shared || l2Only)(
      l2Only
        ? 'a write on one instance evicts the key from the other instance’s L1 (bus) [not run: an L2-only cache has no L1; see l2-only.test.ts]'
        : 'a write on one instance evicts the key from the other instance’s L1 (bus)',
      async () => {
        const a = make();
        const b = make();
        await Promise.all([a.ready(), b.ready()]);
        const heard = () =>
          new Promise<void>((resolve) => {
            const stop = b.onInvalidation((message) => {
              if (message.k.some((key) => key.endsWith('busy'))) {
                stop();
                resolve();
              }
            });
          });
        // The message of v1's write is applied first: a late one names the write B's L1 then
        // holds, which it keeps, and would be taken here for v2's.
        const first = heard();
        await a.set('busy', 'v1');
        await first;
        expect(await b.get('busy')).toBe('v1');
        expect(b.getLocal('busy')).toBe('v1');
        const evicted = heard();
        await a.set('busy', 'v2');
        await evicted;
        expect(b.getLocal('busy')).toBeUndefined();
        expect(await b.get('busy')).toBe('v2');
      },
    );

    it('writes large tagged values of one turn together (Redis: separate commands, not a pipeline)', async () => {
      const cache = make();
      // Incompressible, ≥ 4 KiB each even under gzip/zstd: the tier's large-value write path.
      const values = Array.from({ length: 8 }, () => randomBytes(6_000).toString('base64'));
      await Promise.all(
        values.map((value, index) =>
          cache.set(`big:${index}`, value, { ttlMs: 60_000, tags: ['big', `big:${index}`] }),
        ),
      );
      const reader = shared ? make() : cache;
      expect(await reader.getMany(values.map((_, index) => `big:${index}`))).toEqual(values);
      expect(await cache.deleteByTag('big:3')).toBeGreaterThanOrEqual(1);
      expect(await cache.get('big:3')).toBeUndefined();
      expect(await cache.deleteByTag('big')).toBeGreaterThanOrEqual(7);
      // A fresh instance (empty L1) sees what is left in L2: nothing.
      const fresh = shared ? make() : cache;
      expect(await fresh.getMany(values.map((_, index) => `big:${index}`))).toEqual(
        values.map(() => undefined),
      );
    });

    it('user keys shaped like internal keys neither break nor are broken by the cache', async () => {
      // The cache's own Redis keys (tag sets, leases, structures, hot keys) once shared the user
      // key space: a user key `__lease:k` held k's lease forever, `__tag:x` broke every write
      // tagged x (WRONGTYPE). A prefix of its own keeps the root clear of other tests.
      const own = { prefix: `${ownPrefix()}iso:` };
      const cache = make(own);
      const lookalikes = ['__structures', '__tag:x', '__lease:k', '__hot', '__bus', 'v:k', '__tag:'];
      await cache.setMany(lookalikes.map((key) => ({ key, value: { key, shape: 'record' } })));
      await cache.set('tagged', { n: 1 }, { tags: ['x'] });
      expect(
        await cache.getOrSet('k', () => ({ computed: 'k' }), { tags: ['x'], lockTimeoutMs: 1_000 }),
      ).toEqual({
        computed: 'k',
      });
      expect(await cache.deleteByTag('x')).toBeGreaterThanOrEqual(2);
      const reader = shared ? make(own) : cache;
      expect(await reader.getMany(['tagged', 'k'])).toEqual([undefined, undefined]);
      expect(await reader.getMany(lookalikes)).toEqual(lookalikes.map((key) => ({ key, shape: 'record' })));
      await cache.delete('__lease:k');
      const fresh = shared ? make(own) : cache;
      expect(await fresh.get('__lease:k')).toBeUndefined();
      expect(await fresh.get('__tag:x')).toEqual({ key: '__tag:x', shape: 'record' });
    });

    it.skipIf(!shared)(
      'the root clear removes every value but keeps live leases; values written after it decode everywhere',
      async () => {
        // The clear SCANs the whole shared keyspace (other files' and sessions' keys too): on a
        // busy machine that can outlast the default 500 ms deadline, and a timed-out clear is
        // (by design) a silent, degraded no-op. The deadline is not what this test is about.
        const own = { prefix: `${ownPrefix()}rootclear:`, operationTimeoutMs: 10_000 };
        const writer = make(own);
        await writer.set('before', { name: 'a', age: 1 });
        let running = 0;
        let most = 0;
        const slow = async () => {
          running += 1;
          most = Math.max(most, running);
          await delay(150);
          running -= 1;
          return { name: 'slow', age: 2 };
        };
        const computing = writer.getOrSet('slow', slow);
        await delay(30);
        await make(own).clear();
        expect(await make(own).get('before')).toBeUndefined();
        // The lease survives the clear: a second instance waits for the first instead of running
        // the factory alongside it.
        await Promise.all([computing, make(own).getOrSet('slow', slow)]);
        expect(most).toBe(1);
        // Written after the clear by an instance that held the list the clear deleted (it reads
        // the list again on the clear's bus message): a fresh instance, which loads the list
        // from Redis, must still decode it.
        await writer.set('after', { name: 'b', age: 3 });
        expect(await make(own).get('after')).toEqual({ name: 'b', age: 3 });
      },
    );

    it.skipIf(!shared)('a second instance reads what the first wrote', async () => {
      const a = make();
      const b = make();
      await a.set('shared', 'from a');
      expect(await b.get('shared')).toBe('from a');
    });
    // ---- sliding expiry ------------------------------------------------------------------

    it('a sliding entry stays fresh while read, ends a window after the last hit, never past its ttl', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, slidingTtlMs: 1_000 });
      await cache.set('slide', 'v');
      await cache.set('slide:bounded', 'w', { ttlMs: 2_500 });
      await cache.set('slide:off', 'x', { ttlMs: 1_000, slidingTtlMs: 0 });
      clock.advance(800);
      expect(await cache.get('slide')).toBe('v');
      expect(await cache.getOrSet('slide:bounded', () => 'recomputed')).toBe('w');
      expect(await cache.get('slide:off')).toBe('x'); // a hit, but this entry does not slide
      clock.advance(800); // 1,600: past the first window, within the slid one
      expect(await cache.getMany(['slide', 'slide:bounded', 'slide:off'])).toEqual(['v', 'w', undefined]);
      clock.advance(800); // 2,400
      expect(await cache.has('slide')).toBe(true);
      expect(await cache.getOrSetMany(['slide:bounded'], () => ['recomputed'])).toEqual(['w']);
      clock.advance(800); // 3,200: 'slide:bounded' reached its ttl (2,500) however often it was read
      expect(await cache.get('slide')).toBe('v');
      expect(await cache.getOrSet('slide:bounded', () => 'recomputed')).toBe('recomputed');
      clock.advance(1_100); // no read of 'slide' for longer than its window
      expect(await cache.get('slide')).toBeUndefined();
    });

    it('a sliding entry past its window is in grace: a failing factory gets it, as for a ttl', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock, slidingTtlMs: 1_000, graceMs: 60_000, graceBackoffMs: 0 });
      expect(await cache.getOrSet('slide:grace', () => 'v')).toBe('v');
      clock.advance(900);
      expect(await cache.getOrSet('slide:grace', () => 'not run')).toBe('v'); // slides to 1,900
      clock.advance(1_500);
      expect(await cache.get('slide:grace')).toBeUndefined();
      expect(await cache.getOrSet('slide:grace', () => Promise.reject(new Error('source down')))).toBe('v');
    });

    it.skipIf(!shared)(
      'an L2 hit slides L2’s copy for every instance; an L1 hit slides only that L1 (L2-only: every hit slides L2)',
      async () => {
        const clock = new ManualClock(Date.now());
        const a = make({ clock, slidingTtlMs: 1_000 });
        const b = make({ clock, slidingTtlMs: 1_000 });
        await Promise.all([a.ready(), b.ready()]);
        // The write's bus message must reach b before b's reads, or it could evict b's copy later.
        const applied = new Promise<void>((resolve) => {
          const stop = b.onInvalidation(() => {
            stop();
            resolve();
          });
        });
        await a.set('slide:shared', 'v');
        await applied;
        clock.advance(800);
        expect(await b.get('slide:shared')).toBe('v'); // L2 hit: L2 and b's copy now end at 1,800
        clock.advance(800); // 1,600: a's L1 copy ended at 1,000, L2's did not
        expect(await a.get('slide:shared')).toBe('v'); // L2 hit: L2 ends at 2,600
        clock.advance(800); // 2,400: b's L1 copy ended at 1,800
        expect(await b.get('slide:shared')).toBe('v'); // L2 hit: L2 and b's copy end at 3,400
        clock.advance(800); // 3,200
        // L1 hit: b's copy ends at 4,200, L2 stays. L2-only: an L2 hit, L2 ends at 4,200.
        expect(await b.get('slide:shared')).toBe('v');
        clock.advance(400); // 3,600: a's copy (2,600) and L2's (3,400) are past; L2-only: L2's is not
        expect(await a.get('slide:shared')).toBe(l2Only ? 'v' : undefined);
        expect(await b.get('slide:shared')).toBe('v');
      },
    );

    // ---- expire: soft invalidation ---------------------------------------------------------

    /** A cache with grace whose clock the test moves, and a factory that always fails. */
    const graced = (clock: ManualClock, extra: CacheOptions = {}) =>
      make({ clock, graceMs: 60_000, graceBackoffMs: 0, ...extra });
    const failing = () => Promise.reject(new Error('source down'));

    it('expire makes get and has miss and getOrSet run the factory; the next value is fresh', async () => {
      const clock = new ManualClock(Date.now());
      const cache = graced(clock);
      const expired: string[] = [];
      cache.on('expire', ({ key }) => expired.push(key));
      await cache.set('exp:a', 'v1', { ttlMs: 60_000 });
      await cache.expire('exp:a');
      expect(expired).toEqual(['exp:a']);
      expect(await cache.get('exp:a')).toBeUndefined();
      expect(await cache.has('exp:a')).toBe(false);
      // L2 too: an instance with an empty L1 finds no fresh value either.
      if (shared) expect(await graced(clock).get('exp:a')).toBeUndefined();
      let runs = 0;
      const factory = () => {
        runs += 1;
        return `v${runs + 1}`;
      };
      expect(await cache.getOrSet('exp:a', factory)).toBe('v2');
      expect(await cache.getOrSet('exp:a', factory)).toBe('v2');
      expect(runs).toBe(1);
      expect(await cache.get('exp:a')).toBe('v2');
    });

    it('after expire, a failing factory gets the old value for the grace period, then FactoryError', async () => {
      const clock = new ManualClock(Date.now());
      const cache = graced(clock);
      await cache.set('exp:g', 'old', { ttlMs: 600_000 });
      await cache.expireMany(['exp:g']);
      expect(await cache.getOrSet('exp:g', failing)).toBe('old');
      // The old value stays in L2 as well: an instance with an empty L1 falls back on it.
      if (shared) expect(await graced(clock).getOrSet('exp:g', failing)).toBe('old');
      // The grace runs from the expire (60 s), not from the original expiry (600 s).
      clock.advance(60_000);
      await expect(cache.getOrSet('exp:g', failing)).rejects.toBeInstanceOf(FactoryError);
      if (shared) await expect(graced(clock).getOrSet('exp:g', failing)).rejects.toBeInstanceOf(FactoryError);
      expect(await cache.getOrSet('exp:g', () => 'new')).toBe('new');
    });

    it('after expire, a factory past the soft timeout gets the old value and refreshes in the background', async () => {
      const clock = new ManualClock(Date.now());
      const cache = graced(clock);
      await cache.set('exp:slow', 'old', { ttlMs: 60_000 });
      await cache.expire('exp:slow');
      // The factory finishes only once the caller has its answer: on a loaded machine a fixed
      // delay could end before the 10 ms soft timeout fired.
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const slow = async () => {
        await finished;
        return 'new';
      };
      expect(await cache.getOrSet('exp:slow', slow, { softTimeoutMs: 10 })).toBe('old');
      finish();
      await vi.waitFor(async () => expect(await cache.get('exp:slow')).toBe('new'), { timeout: 5_000 });
    });

    it('without grace, expire is a delete: a failing factory rejects, with or without TTL', async () => {
      const clock = new ManualClock(Date.now());
      const cache = make({ clock });
      await cache.set('exp:ttl', 'old', { ttlMs: 60_000 });
      await cache.set('exp:forever', 'old');
      await cache.expireMany(['exp:ttl', 'exp:forever']);
      expect(await cache.getMany(['exp:ttl', 'exp:forever'])).toEqual([undefined, undefined]);
      await expect(cache.getOrSet('exp:ttl', failing)).rejects.toBeInstanceOf(FactoryError);
      await expect(cache.getOrSet('exp:forever', failing)).rejects.toBeInstanceOf(FactoryError);
      // A key without TTL records no grace of its own; with the cache's graceMs it gets that one.
      const withGrace = graced(clock);
      await withGrace.set('exp:forever2', 'old');
      await withGrace.expire('exp:forever2');
      expect(await withGrace.getOrSet('exp:forever2', failing)).toBe('old');
      clock.advance(60_000);
      await expect(withGrace.getOrSet('exp:forever2', failing)).rejects.toBeInstanceOf(FactoryError);
    });

    it('expire of an absent or already stale key changes nothing', async () => {
      const clock = new ManualClock(Date.now());
      const cache = graced(clock);
      await cache.expire('exp:absent');
      expect(await cache.get('exp:absent')).toBeUndefined();
      await cache.set('exp:twice', 'old', { ttlMs: 60_000 });
      await cache.expire('exp:twice');
      clock.advance(30_000);
      // A second expire would restart the grace if it applied to a stale entry.
      await cache.expire('exp:twice');
      clock.advance(30_000);
      await expect(cache.getOrSet('exp:twice', failing)).rejects.toBeInstanceOf(FactoryError);
    });

    it("expireByTag (tagScope: 'global') marks every tagged key stale, in every namespace, and nothing else", async () => {
      const clock = new ManualClock(Date.now());
      const cache = graced(clock, { tagScope: 'global' });
      await cache.setMany([
        { key: 'et:1', value: 1, tags: ['et'], ttlMs: 60_000 },
        { key: 'et:2', value: 2, tags: ['other', 'et'], ttlMs: 60_000 },
        { key: 'et:3', value: 3, tags: ['other'], ttlMs: 60_000 },
        { key: 'et:4', value: 4, tags: ['et'], ttlMs: 60_000 },
      ]);
      await cache.namespace('ns').set('et:5', 5, { tags: ['et'] });
      // Rewritten without the tag: the tag sets still name it, the entry no longer carries it.
      await cache.set('et:4', 44);
      const expired: string[] = [];
      cache.on('expire', ({ key }) => expired.push(key));
      expect(await cache.expireByTag('et')).toBe(3);
      expect(expired.sort()).toEqual([':ns::et:5', 'et:1', 'et:2']);
      const keys = ['et:1', 'et:2', 'et:3', 'et:4'];
      expect(await cache.getMany(keys)).toEqual([undefined, undefined, 3, 44]);
      expect(await cache.namespace('ns').get('et:5')).toBeUndefined();
      expect(await cache.getOrSet('et:1', failing)).toBe(1);
      expect(await cache.namespace('ns').getOrSet('et:5', failing)).toBe(5);
      if (shared) {
        const other = graced(clock);
        expect(await other.getMany(keys)).toEqual([undefined, undefined, 3, 44]);
        expect(await other.getOrSet('et:2', failing)).toBe(2);
      }
    });

    it('expire supersedes a factory run in progress: its result is returned, not cached', async () => {
      const cache = make();
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      let finish!: () => void;
      const gate = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const first = cache.getOrSet('exp:run', async () => {
        started();
        await gate;
        return 'read before the expire';
      });
      await running;
      await cache.expire('exp:run');
      finish();
      expect(await first).toBe('read before the expire');
      expect(await cache.get('exp:run')).toBeUndefined();
      expect(await cache.getOrSet('exp:run', () => 'after')).toBe('after');
    });

    it.skipIf(!shared)('a set landing between the expire’s read and its write wins', async () => {
      const writer = make();
      const redis = backend!.options().redis!;
      let raced = false;
      // The expirer's connection runs the racing set just before the compare-and-set script
      // reaches Redis, so the script finds other bytes than the ones the expire read.
      const racing = new Proxy(redis, {
        get(target, property) {
          const member: unknown = Reflect.get(target, property, target);
          if (typeof member !== 'function') return member;
          if (property !== 'evalsha' && property !== 'eval') return member.bind(target);
          return async (...args: unknown[]) => {
            if (!raced && String(args[2]).endsWith('v:exp:race')) {
              raced = true;
              await writer.set('exp:race', 'new', { ttlMs: 60_000 });
            }
            return member.apply(target, args);
          };
        },
      });
      const expirer = make({ redis: racing, graceMs: 60_000 });
      await writer.set('exp:race', 'old', { ttlMs: 60_000 });
      await expirer.expire('exp:race');
      expect(raced).toBe(true);
      expect(await make().get('exp:race')).toBe('new');
      expect(await writer.get('exp:race')).toBe('new');
      // Without a race, the same expire applies.
      await expirer.expire('exp:race');
      expect(await make().get('exp:race')).toBeUndefined();
    });

    it.skipIf(!shared)(
      'expire and expireByTag reach the other instance: its L1 copy turns stale',
      async () => {
        const clock = new ManualClock(Date.now());
        const a = graced(clock);
        const b = graced(clock);
        await Promise.all([a.ready(), b.ready()]);
        /** Resolves once b has applied messages of `kind` naming every one of `keys`. */
        const applied = (kind: string, keys: readonly string[]) =>
          new Promise<void>((resolve) => {
            const pending = new Set(keys);
            const stop = b.onInvalidation((message) => {
              if (message.t !== kind) return;
              for (const key of message.k) pending.delete(key);
              if (pending.size === 0) {
                stop();
                resolve();
              }
            });
          });
        // Without batching the two writes are two messages: both must be applied before b reads.
        const written = applied('set', ['eb:k', 'eb:t']);
        await a.setMany([
          { key: 'eb:k', value: 'old', ttlMs: 60_000 },
          { key: 'eb:t', value: 'tagged', ttlMs: 60_000, tags: ['eb'] },
        ]);
        await written;
        expect(await b.getMany(['eb:k', 'eb:t'])).toEqual(['old', 'tagged']);
        expect([await held(b, 'eb:k'), await held(b, 'eb:t')]).toEqual(['old', 'tagged']);
        const expired = applied('exp', ['eb:k']);
        await a.expire('eb:k');
        await expired;
        expect(await held(b, 'eb:k')).toBeUndefined();
        expect(await held(b, 'eb:t')).toBe('tagged');
        const tagExpired = applied('exptag', ['eb']);
        await a.expireByTag('eb');
        await tagExpired;
        expect(await held(b, 'eb:t')).toBeUndefined();
        expect(await b.getOrSet('eb:k', failing)).toBe('old');
        expect(await b.getOrSet('eb:t', () => 'recomputed')).toBe('recomputed');
      },
    );

    it.skipIf(!shared)('expire on one instance supersedes a factory run on another', async () => {
      const a = make();
      const b = make();
      await Promise.all([a.ready(), b.ready()]);
      let started!: () => void;
      const running = new Promise<void>((resolve) => {
        started = resolve;
      });
      let finish!: () => void;
      const gate = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const computing = b.getOrSet('exp:remote-run', async () => {
        started();
        await gate;
        return 'read before the expire';
      });
      await running;
      const applied = new Promise<void>((resolve) => {
        const stop = b.onInvalidation((message) => {
          if (message.t === 'exp' && message.k.includes('exp:remote-run')) {
            stop();
            resolve();
          }
        });
      });
      await a.expire('exp:remote-run');
      await applied;
      finish();
      expect(await computing).toBe('read before the expire');
      expect(await make().get('exp:remote-run')).toBeUndefined();
      expect(await b.get('exp:remote-run')).toBeUndefined();
    });

    it.skipIf(!shared)('a bus message of an unknown kind (a newer release) is ignored', async () => {
      const cache = make();
      await cache.ready();
      const seen: string[] = [];
      const known = new Promise<void>((resolve) => {
        // Only this test's messages: other instances on the channel (earlier cases' caches) may
        // still be publishing under load.
        cache.onInvalidation((message) => {
          if (message.o !== 'newer-release') return;
          seen.push(message.t);
          if (message.t === 'del') resolve();
        });
      });
      await cache.set('bus:kept', 'v');
      const options = backend!.options();
      const channel = `${options.prefix}__bus`;
      const publish = (t: string, k: string[]) =>
        options.redis!.publish(channel, JSON.stringify({ o: 'newer-release', t, k, at: Date.now() }));
      await publish('future-kind', ['bus:kept']);
      // Pub/sub keeps one publisher's order: once the `del` is applied, the first was handled.
      await publish('del', ['bus:gone']);
      await known;
      expect(seen).toEqual(['del']);
      expect(await held(cache, 'bus:kept')).toBe('v');
      expect(await cache.get('bus:kept')).toBe('v');
    });

    it.skipIf(!shared)(
      'a malformed bus message, or a throwing onInvalidation observer, is dropped without an uncaught exception',
      async () => {
        // The bus channel is a plain Redis channel anyone can PUBLISH to; its messages were
        // applied from ioredis's 'message' event, where a TypeError is an uncaught exception.
        const uncaught: unknown[] = [];
        const onUncaught = (error: unknown) => uncaught.push(error);
        process.on('uncaughtException', onUncaught);
        try {
          const cache = make();
          await cache.ready();
          await cache.set('bus:malformed-kept', 'v');
          await cache.set('bus:malformed-gone', 'v');
          let observed = 0;
          const applied = new Promise<void>((resolve) => {
            cache.onInvalidation((message) => {
              if (message.o !== 'malformed-sender') return;
              observed++;
              if (message.t === 'del') resolve();
              throw new Error('observer bug');
            });
          });
          const options = backend!.options();
          const channel = `${options.prefix}__bus`;
          for (const raw of [
            'null',
            '1',
            '"x"',
            '{"t":"del"}',
            '{"o":"malformed-sender","t":"tag","k":[1]}',
          ]) {
            await options.redis!.publish(channel, raw);
          }
          await options.redis!.publish(
            channel,
            JSON.stringify({ o: 'malformed-sender', t: 'del', k: ['bus:malformed-gone'], at: Date.now() }),
          );
          await applied;
          await new Promise((resolve) => setTimeout(resolve, 20));
          expect(uncaught).toEqual([]);
          expect(observed).toBe(1);
          // A message changes L1 only: an L2-only cache had nothing to drop, and reads L2's value.
          expect(await held(cache, 'bus:malformed-gone')).toBe(l2Only ? 'v' : undefined);
          expect(await held(cache, 'bus:malformed-kept')).toBe('v');
        } finally {
          process.off('uncaughtException', onUncaught);
        }
      },
    );
  });
}
