import { ManualClock } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import type { AutoBlockPolicy } from '../src/auto-block.js';
import {
  type ConsumeOutcome,
  createRateLimiter,
  type LimitPolicy,
  MemoryStore,
  type RateLimiter,
  type RateLimitStore,
  UnsupportedOperationError,
} from '../src/index.js';

const start = 1_800_000_000_000;

/** A store that leaves the process, in front of a memory store; `failing` makes its checks fail. */
class RemoteMemory implements RateLimitStore {
  readonly kind = 'remote-memory';
  readonly remote = true;
  failing = false;
  consumed = 0;
  constructor(readonly inner: MemoryStore) {}
  async consume(
    key: string,
    limits: readonly LimitPolicy[],
    costs: readonly number[],
    block: AutoBlockPolicy | undefined,
  ): Promise<ConsumeOutcome[]> {
    this.consumed += 1;
    if (this.failing) throw new Error('store down');
    return this.inner.consume(key, limits, costs, block);
  }
  reset(key: string): Promise<boolean> {
    return this.inner.reset(key);
  }
  resetAll(namespaces?: readonly string[]): Promise<void> {
    return this.inner.resetAll(namespaces);
  }
  async close(): Promise<void> {}
}

describe('limiter.resetAll()', () => {
  it('forgets every key’s counters and blocks, of the default limits and of each role', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 60_000 }],
      roles: { free: [{ algorithm: 'sliding-log', limit: 1, windowMs: 60_000 }], admin: 'unlimited' },
      autoBlock: { violations: 1, withinMs: 60_000, blockMs: 600_000, maxBlockMs: 600_000 },
      clock,
    });
    for (const key of ['a', 'b', 'c']) for (let index = 0; index < 3; index += 1) await limiter.check(key);
    await limiter.check({ key: 'a', role: 'free' });
    await limiter.check({ key: 'a', role: 'free' });
    await limiter.block('manual', 600_000);
    expect((await limiter.check('a')).outcome).toBe('blocked');
    expect((await limiter.check({ key: 'a', role: 'free' })).outcome).toBe('blocked');
    expect((await limiter.check('manual')).outcome).toBe('blocked');
    await limiter.resetAll();
    for (const key of ['a', 'b', 'c', 'manual'])
      expect(await limiter.check(key)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await limiter.check({ key: 'a', role: 'free' })).toMatchObject({ allowed: true, remaining: 0 });
    // The offences are forgotten too: the next refusal blocks for the first block's length.
    await limiter.check('b');
    const blocked = await limiter.check('b');
    expect(blocked.source === 'fail-mode' ? undefined : blocked.blockedMs).toBe(600_000);
    await limiter.close();
  });

  it('clears the keys its rules wrote under earlier limits (another fingerprint), and no other prefix’s', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const earlier = {
      limits: [{ limit: 1, windowMs: 60_000 }],
      roles: { free: [{ algorithm: 'sliding-log' as const, limit: 1, windowMs: 60_000 }] },
      clock,
    };
    const later = {
      limits: [{ algorithm: 'token-bucket' as const, limit: 1, windowMs: 120_000 }],
      roles: { free: [{ algorithm: 'sliding-log' as const, limit: 1, windowMs: 120_000 }] },
      clock,
    };
    const spend = async (limiter: RateLimiter) => {
      for (const input of ['user', { key: 'user', role: 'free' }]) {
        await limiter.check(input);
        expect((await limiter.check(input)).allowed).toBe(false);
      }
    };
    // Prefixes that start like ours: their keys begin with `api:default:` or `api:role-free:` too.
    const others = ['api:default', 'api:role-free', 'ap'].map((prefix) =>
      createRateLimiter({ store, prefix, ...earlier }),
    );
    for (const other of others) await spend(other);
    const first = createRateLimiter({ store, prefix: 'api', ...earlier });
    await spend(first);
    await first.close();
    // The same prefix restarted with other windows (another fingerprint): a second generation.
    const second = createRateLimiter({ store, prefix: 'api', ...later });
    await spend(second);
    expect(store.size).toBe(3 * 2 + 2 + 2);

    await second.resetAll();

    expect(store.size).toBe(3 * 2);
    expect((await second.check('user')).allowed).toBe(true);
    expect((await second.check({ key: 'user', role: 'free' })).allowed).toBe(true);
    await second.close();
    // Back to the earlier limits: their counters went too.
    const third = createRateLimiter({ store, prefix: 'api', ...earlier });
    expect((await third.check('user')).allowed).toBe(true);
    expect((await third.check({ key: 'user', role: 'free' })).allowed).toBe(true);
    for (const other of others) {
      expect((await other.check('user')).allowed).toBe(false);
      expect((await other.check({ key: 'user', role: 'free' })).allowed).toBe(false);
    }
    await Promise.all([third, ...others].map((limiter) => limiter.close()));
  });

  it('records each rule’s namespace for as long as its keys may live, refreshed while it runs', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const clock = new ManualClock(start);
      const store = new MemoryStore({ clock });
      const windowMs = 60_000;
      const limiter = createRateLimiter({ store, prefix: 'api', limits: [{ limit: 1, windowMs }], clock });
      const [namespace] = await store.recordedNamespaces('api:default');
      expect(namespace).toMatch(/^api:default:[\w-]{8}:$/);
      expect(await store.recordedNamespaces('api')).toEqual([]);
      // Running for a day: the record is refreshed, so it outlives the keys written meanwhile.
      for (let minute = 0; minute < 24 * 60; minute += 1) {
        clock.advance(60_000);
        vi.advanceTimersByTime(60_000);
      }
      expect(await store.recordedNamespaces('api:default')).toEqual([namespace]);
      await limiter.check('user');
      await limiter.close();
      clock.advance(2 * windowMs);
      expect(await store.recordedNamespaces('api:default')).toEqual([namespace]);
      // Not forever: gone within a day of the last keys' expiry.
      clock.advance(86_400_000);
      expect(await store.recordedNamespaces('api:default')).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a manual block keeps the record as long as the blocked key lives', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const limiter = createRateLimiter({
      store,
      prefix: 'api',
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock,
    });
    const recorded = await store.recordedNamespaces('api:default');
    await limiter.block('user', 10 * 86_400_000);
    await limiter.close();
    clock.advance(10 * 86_400_000 - 1);
    expect(await store.recordedNamespaces('api:default')).toEqual(recorded);
    const restarted = createRateLimiter({
      store,
      prefix: 'api',
      limits: [{ limit: 1, windowMs: 120_000 }],
      clock,
    });
    // The earlier generation's key is still blocked, under the other fingerprint: cleared too.
    await restarted.resetAll();
    await restarted.close();
    const back = createRateLimiter({ store, prefix: 'api', limits: [{ limit: 1, windowMs: 60_000 }], clock });
    expect((await back.check('user')).outcome).toBe('allowed');
    await back.close();
  });

  it('a single limit on the memory fast path (checkSync too)', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      clock: new ManualClock(start),
    });
    limiter.checkSync('k');
    expect(limiter.checkSync('k').allowed).toBe(false);
    await limiter.resetAll();
    expect(limiter.checkSync('k').allowed).toBe(true);
    expect((limiter.store as MemoryStore).size).toBe(1);
    await limiter.close();
  });

  it('on a shared MemoryStore, only this limiter’s keys go', async () => {
    const store = new MemoryStore({ clock: new ManualClock(start) });
    const api = createRateLimiter({ store, prefix: 'api', limits: [{ limit: 1, windowMs: 60_000 }] });
    const login = createRateLimiter({ store, prefix: 'login', limits: [{ limit: 1, windowMs: 60_000 }] });
    await api.check('k');
    await login.check('k');
    await store.consume(
      'raw',
      [{ name: 'raw', algorithm: 'fixed-window', limit: 1, windowMs: 60_000 }],
      [1],
      undefined,
    );
    expect(store.size).toBe(3);
    await api.resetAll();
    expect(store.size).toBe(2);
    expect((await api.check('k')).allowed).toBe(true);
    expect((await login.check('k')).allowed).toBe(false);
    await Promise.all([api.close(), login.close()]);
    // The store's own resetAll: by namespace within full keys, or everything.
    await store.resetAll(['nothing:']);
    expect(store.size).toBe(3);
    await store.resetAll(['ra']);
    expect(store.size).toBe(2);
    await store.resetAll();
    expect(store.size).toBe(0);
  });

  it('clears the hot-key cache of a remote store and the local fallback’s counters', async () => {
    const clock = new ManualClock(start);
    const remote = new RemoteMemory(new MemoryStore({ clock }));
    const limiter = createRateLimiter({
      store: remote,
      limits: [{ limit: 1, windowMs: 60_000 }],
      failMode: 'local',
      clock,
    });
    await limiter.check('hot');
    expect((await limiter.check('hot')).source).toBe('store');
    // Refused from the local cache without asking the store.
    const asked = remote.consumed;
    expect((await limiter.check('hot')).source).toBe('local-cache');
    expect(remote.consumed).toBe(asked);
    await limiter.resetAll();
    expect(await limiter.check('hot')).toMatchObject({ allowed: true, source: 'store' });
    // The store down: checks count in the local fallback, which resetAll clears as well.
    remote.failing = true;
    await limiter.check('down');
    const refused = await limiter.check('down');
    expect(refused).toMatchObject({ allowed: false, source: 'fallback' });
    await limiter.resetAll();
    expect(await limiter.check('down')).toMatchObject({ allowed: true, source: 'fallback' });
    await limiter.close();
  });

  it('wakes callers waiting in acquire() for a key it cleared', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 3_600_000 }], clock });
    await limiter.check('k');
    const waiting = limiter.acquire('k', { timeoutMs: 7_200_000 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await limiter.resetAll();
    await expect(waiting).resolves.toMatchObject({ allowed: true });
    await limiter.close();
  });

  it('a store without resetAll(): UnsupportedOperationError naming it; after close(): ClosedError', async () => {
    const remote = new RemoteMemory(new MemoryStore());
    const store: RateLimitStore = {
      kind: 'no-reset-all',
      remote: true,
      consume: (key, limits, costs, block) => remote.consume(key, limits, costs, block),
      reset: (key) => remote.reset(key),
      close: () => remote.close(),
    };
    const limiter = createRateLimiter({ store, limits: [{ limit: 1, windowMs: 60_000 }] });
    const error = await limiter.resetAll().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnsupportedOperationError);
    expect((error as UnsupportedOperationError).operation).toBe('resetAll');
    expect((error as Error).message).toContain('no-reset-all');
    await limiter.close();
    await expect(limiter.resetAll()).rejects.toMatchObject({ name: 'ClosedError' });
  });
});
