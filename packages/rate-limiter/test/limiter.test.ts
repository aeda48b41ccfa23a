import diagnosticsChannel from 'node:diagnostics_channel';
import { ConfigError, ManualClock } from '@noa/core';
import { awayFromWindowEdge } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  type ConsumeOutcome,
  createRateLimiter,
  MemoryStore,
  RateLimitedError,
  type RateLimitResult,
  type RateLimitStore,
} from '../src/index.js';
import { admitted } from '../src/stores/store.js';

const start = 1_700_000_000_000;

describe('RateLimiter on the memory store', () => {
  it('admits up to the limit, then refuses with an exact retry time', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({ limits: [{ limit: 3, windowMs: 1_000 }], clock });
    const results = [];
    for (let index = 0; index < 4; index += 1) results.push(await limiter.check('a'));
    expect(results.map((result) => result.allowed)).toEqual([true, true, true, false]);
    expect(results.map((result) => result.remaining)).toEqual([2, 1, 0, 0]);
    expect(results[3]).toMatchObject({ outcome: 'limited', retryAfterMs: 1_000, resetMs: 1_000 });
    clock.advance(1_000);
    expect((await limiter.check('a')).allowed).toBe(true);
    await limiter.close();
  });

  it('checks several limits at once and counts a refused request in none of them', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [
        { name: 'burst', algorithm: 'token-bucket', limit: 2, windowMs: 1_000 },
        { name: 'daily', limit: 3, windowMs: 86_400_000 },
      ],
      clock,
    });
    expect((await limiter.check('u')).allowed).toBe(true);
    expect((await limiter.check('u')).allowed).toBe(true);
    const refused = await limiter.check('u');
    expect(refused.allowed).toBe(false);
    expect(refused.limits.map((limit) => [limit.name, limit.allowed, limit.remaining])).toEqual([
      ['burst', false, 0],
      ['daily', true, 1],
    ]);
    clock.advance(500);
    const third = await limiter.check('u');
    expect(third.allowed).toBe(true);
    expect(third.limits[1]!.remaining).toBe(0);
    clock.advance(10_000);
    const fourth = await limiter.check('u');
    expect(fourth.allowed).toBe(false);
    expect(fourth.limits.map((limit) => limit.name + String(limit.allowed))).toEqual([
      'bursttrue',
      'dailyfalse',
    ]);
  });

  it('applies role rules, cost, and unlimited roles', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 2, windowMs: 60_000 }],
      roles: { pro: [{ limit: 10, windowMs: 60_000 }], admin: 'unlimited' },
      clock: new ManualClock(start),
    });
    expect((await limiter.check({ key: 'k', cost: 2 })).allowed).toBe(true);
    expect((await limiter.check({ key: 'k' })).allowed).toBe(false);
    expect((await limiter.check({ key: 'k', role: 'pro', cost: 10 })).allowed).toBe(true);
    const admin = await limiter.check({ key: 'k', role: 'admin', cost: 1_000 });
    expect(admin).toMatchObject({ allowed: true, outcome: 'unlimited' });
    expect(limiter.limitsFor('pro')[0]!.limit).toBe(10);
  });

  it('honours allow and deny lists with IPv4, IPv6 and CIDR ranges', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      allow: ['10.0.0.0/8', '2001:db8::/32'],
      deny: ['192.0.2.7', 'fd00::/8'],
    });
    expect((await limiter.check({ key: 'x', ip: '192.0.2.7' })).outcome).toBe('denied');
    expect((await limiter.check({ key: 'x', ip: '::ffff:192.0.2.7' })).outcome).toBe('denied');
    expect((await limiter.check({ key: 'x', ip: 'fd12::1' })).allowed).toBe(false);
    for (let index = 0; index < 3; index += 1) {
      expect((await limiter.check({ key: 'y', ip: '10.1.2.3' })).outcome).toBe('allowlisted');
      expect((await limiter.check({ key: 'y', ip: '2001:db8:1::5' })).outcome).toBe('allowlisted');
    }
    expect((await limiter.check({ key: 'z', ip: '203.0.113.1' })).allowed).toBe(true);
    expect((await limiter.check({ key: 'z', ip: '203.0.113.1' })).allowed).toBe(false);
  });

  it('auto-blocks a key after repeated violations, longer for repeat offenders', async () => {
    const clock = new ManualClock(start);
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 1_000 }],
      autoBlock: { violations: 2, withinMs: 10_000, blockMs: 5_000, multiplier: 2 },
      localBlockCache: false,
      clock,
    });
    await limiter.check('abuser');
    await limiter.check('abuser');
    const second = await limiter.check('abuser');
    expect(second.retryAfterMs).toBe(5_000);
    clock.advance(2_000);
    const blocked = await limiter.check('abuser');
    expect(blocked).toMatchObject({ allowed: false, outcome: 'blocked', retryAfterMs: 3_000 });
    clock.advance(3_000);
    expect((await limiter.check('abuser')).allowed).toBe(true);
    await limiter.check('abuser');
    const again = await limiter.check('abuser');
    expect(again.retryAfterMs).toBe(10_000);
  });

  it('consume() rejects with a RateLimitedError carrying the retry time', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 1_000 }],
      clock: new ManualClock(start),
    });
    await limiter.consume('c');
    const error = await limiter.consume('c').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect(error).toMatchObject({ code: 'NOA_RATE_LIMITED', retryAfterMs: 1_000 });
  });

  it('reset() forgets a key for the default limits or a role', async () => {
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      roles: { pro: [{ limit: 1, windowMs: 60_000 }] },
      clock: new ManualClock(start),
    });
    await limiter.check('r');
    await limiter.check({ key: 'r', role: 'pro' });
    expect((await limiter.check('r')).allowed).toBe(false);
    await limiter.reset('r');
    expect((await limiter.check('r')).allowed).toBe(true);
    expect((await limiter.check({ key: 'r', role: 'pro' })).allowed).toBe(false);
    await limiter.reset('r', 'pro');
    expect((await limiter.check({ key: 'r', role: 'pro' })).allowed).toBe(true);
  });

  it('rejects a cost that is not a non-negative integer', async () => {
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 1_000 }] });
    await expect(limiter.check({ key: 'c', cost: -1 })).rejects.toMatchObject({
      code: 'NOA_RATE_LIMIT_INVALID_COST',
    });
    await expect(limiter.check({ key: 'c', cost: 1.5 })).rejects.toMatchObject({
      code: 'NOA_RATE_LIMIT_INVALID_COST',
    });
    expect((await limiter.check({ key: 'c', cost: 0 })).allowed).toBe(true);
  });

  it('refuses a rule of more than 16 limits (the Redis store keeps and resets at most 16 sliding logs per key)', () => {
    const limits = (count: number) =>
      Array.from({ length: count }, (_, index) => ({ name: `l${index}`, limit: 1, windowMs: 1_000 }));
    expect(() => createRateLimiter({ limits: limits(16) })).not.toThrow();
    expect(() => createRateLimiter({ limits: limits(17) })).toThrow(ConfigError);
    expect(() => createRateLimiter({ limits: limits(1), roles: { pro: limits(17) } })).toThrow(
      /roles\.pro: give at most 16 limits per rule/,
    );
  });

  it("names what is wrong in a role's limits, not only the role (it said 'Invalid input')", () => {
    expect(() =>
      createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], roles: { pro: [{ limit: 1 }] } } as never),
    ).toThrow(/roles\.pro\.0\.windowMs: required \(expected a number\)/);
    expect(() =>
      createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], roles: { pro: 'unlimted' } } as never),
    ).toThrow(/roles\.pro: expected an array or 'unlimited', got 'unlimted'/);
  });

  it('refuses a role name that is not well-formed Unicode with a ConfigError (it threw a URIError)', () => {
    const create = () =>
      createRateLimiter({
        limits: [{ limit: 1, windowMs: 1_000 }],
        roles: { 'pro\uD800': [{ limit: 1, windowMs: 1_000 }] },
      });
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(/roles/);
  });

  it('refuses a bucket whose state (capacity × windowMs, scaled to whole numbers) would pass 2^53', () => {
    const windowMs = 86_400_000;
    const most = Math.floor(Number.MAX_SAFE_INTEGER / windowMs);
    for (const algorithm of ['token-bucket', 'leaky-bucket'] as const) {
      expect(() => createRateLimiter({ limits: [{ algorithm, limit: most, windowMs }] })).not.toThrow();
      expect(() => createRateLimiter({ limits: [{ algorithm, limit: most + 1, windowMs }] })).toThrow(
        /limits\.0\.limit/,
      );
      expect(() =>
        createRateLimiter({ limits: [{ algorithm, limit: 1, burst: most + 1, windowMs }] }),
      ).toThrow(/limits\.0\.burst/);
    }
    // A queue adds its delay's worth of requests to what the leaky bucket holds.
    expect(() =>
      createRateLimiter({
        limits: [{ algorithm: 'leaky-bucket', limit: most, windowMs, queueMaxDelayMs: windowMs }],
      }),
    ).toThrow(/limits\.0/);
  });

  it('rejects bad options with a ConfigError naming the field', () => {
    const attempt = (options: unknown) => {
      try {
        createRateLimiter(options as never);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const error = attempt({ limits: [{ limit: 0, windowMs: 1_000 }] });
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).fields).toEqual(['limits.0.limit']);
    expect(
      (attempt({ limits: [{ limit: 1, windowMs: 1 }], deny: ['10.0.0.0/33'] }) as ConfigError).fields,
    ).toEqual(['deny.0']);
    expect(
      (attempt({ limits: [{ algorithm: 'fixed-window', limit: 1, windowMs: 1, burst: 3 }] }) as ConfigError)
        .fields,
    ).toEqual(['limits.0.burst']);
    expect((attempt({ limits: [], failMode: 'maybe' }) as ConfigError).fields.sort()).toEqual([
      'failMode',
      'limits',
    ]);
  });

  it('rejects a queueMaxDelayMs longer than a timer can wait (it would fire at once)', () => {
    const queue = (queueMaxDelayMs: number) => () =>
      createRateLimiter({
        limits: [{ algorithm: 'leaky-bucket', limit: 1, windowMs: 1_000, queueMaxDelayMs }],
      });
    expect(queue(2 ** 31)).toThrow(ConfigError);
    try {
      queue(2 ** 31)();
    } catch (error) {
      expect((error as ConfigError).fields).toEqual(['limits.0.queueMaxDelayMs']);
    }
    expect(queue(2 ** 31 - 1)).not.toThrow();
  });

  it('rejects a limit named as another one is by default (two "default" policies in the headers)', () => {
    const attempt = (limits: unknown[]) => () =>
      createRateLimiter({ limits, roles: { pro: limits } } as never);
    const unnamedThenDefault = [
      { limit: 10, windowMs: 1_000 },
      { name: 'default', limit: 1_000, windowMs: 86_400_000 },
    ];
    expect(attempt(unnamedThenDefault)).toThrow(ConfigError);
    try {
      attempt(unnamedThenDefault)();
    } catch (error) {
      expect((error as ConfigError).fields.sort()).toEqual(['limits.1.name', 'roles.pro.1.name']);
    }
    expect(
      attempt([
        { name: 'limit-1', limit: 10, windowMs: 1_000 },
        { limit: 1_000, windowMs: 86_400_000 },
      ]),
    ).toThrow(ConfigError);
    // Names that cannot collide are fine.
    expect(
      attempt([
        { limit: 10, windowMs: 1_000 },
        { limit: 1_000, windowMs: 86_400_000 },
      ]),
    ).not.toThrow();
  });

  it('counts outcomes in prom-client metrics', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], registry });
    // Two refusals only within the one-second window (real clock) the first check opened.
    await awayFromWindowEdge(1_000, 300);
    await limiter.check('m');
    await limiter.check('m');
    await limiter.check('m');
    const text = await registry.metrics();
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 1',
    );
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="store"} 2',
    );
    expect(text).toContain('noa_rate_limiter_fallback_active{limiter="limiter"} 0');
  });
});

describe('MemoryStore', () => {
  it('stays bounded under a flood of new keys and keeps busy keys', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 1_000, clock });
    const limits = [{ name: 'd', algorithm: 'fixed-window' as const, limit: 5, windowMs: 3_600_000 }];
    for (let index = 0; index < 3; index += 1) store.consumeOne('busy', limits, 1, undefined);
    for (let index = 0; index < 50_000; index += 1) {
      store.consumeOne(`flood-${index}`, limits, 1, undefined);
      if (index % 500 === 0) {
        clock.advance(1_001);
        store.consumeOne('busy', limits, 0, undefined);
      }
      expect(store.size).toBeLessThanOrEqual(1_000);
    }
    expect(store.consumeOne('busy', limits, 1, undefined).decisions[0]!.remaining).toBe(1);
  });

  it('sweeps expired keys as new ones arrive, with no timers', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ clock });
    const limits = [{ name: 'd', algorithm: 'fixed-window' as const, limit: 5, windowMs: 1_000 }];
    for (let index = 0; index < 500; index += 1) store.consumeOne(`old-${index}`, limits, 1, undefined);
    clock.advance(5_000);
    for (let index = 0; index < 500; index += 1) store.consumeOne(`new-${index}`, limits, 1, undefined);
    expect(store.size).toBe(500);
  });

  it('at the cap evicts an expired key before a live one (a drained bucket keeps its state)', () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 2, clock });
    const limits = [{ name: 'b', algorithm: 'token-bucket' as const, limit: 10, windowMs: 60_000 }];
    // Drained: kept until the bucket is full again, 60 s. Light: full again after 6 s.
    store.consumeOne('drained', limits, 10, undefined);
    store.consumeOne('light', limits, 1, undefined);
    clock.advance(10_000);
    store.consumeOne('new', limits, 1, undefined);
    // 10 s refilled 1.67 tokens: evicting the live key instead would hand it a full bucket.
    expect(store.consumeOne('drained', limits, 0, undefined).decisions[0]!.remaining).toBe(1);
  });

  it('counts refusals as use: a key hammered over its limit is not the first evicted by a flood', async () => {
    const twoLimits = [
      { name: 'a', algorithm: 'fixed-window' as const, limit: 1, windowMs: 3_600_000 },
      { name: 'b', algorithm: 'sliding-window' as const, limit: 5, windowMs: 3_600_000 },
    ];
    // The limiter's single-limit fast path, and the store's general path (two limits).
    const paths = [
      (store: MemoryStore, clock: ManualClock) => {
        const limiter = createRateLimiter({ store, limits: [twoLimits[0]!], clock });
        return (key: string) => limiter.checkSync(key).allowed;
      },
      (store: MemoryStore) => (key: string) => admitted(store.consumeOne(key, twoLimits, 1, undefined)),
    ];
    for (const path of paths) {
      const clock = new ManualClock(start);
      const store = new MemoryStore({ maxKeys: 2, clock });
      const check = path(store, clock);
      expect(check('abuser')).toBe(true);
      clock.advance(10);
      expect(check('quiet')).toBe(true);
      clock.advance(2_000);
      expect(check('abuser')).toBe(false);
      // A new key at the cap: the least recently used one ('quiet') goes, not the abuser.
      expect(check('newcomer')).toBe(true);
      expect(check('abuser')).toBe(false);
    }
  });

  it('keeps a blocked key hammered during its block when a flood of new keys arrives', async () => {
    const clock = new ManualClock(start);
    const store = new MemoryStore({ maxKeys: 2, clock });
    const limiter = createRateLimiter({ store, limits: [{ limit: 100, windowMs: 1_000 }], clock });
    await limiter.block('abuser', 3_600_000);
    clock.advance(10);
    await limiter.check('quiet');
    clock.advance(2_000);
    expect((await limiter.check('abuser')).outcome).toBe('blocked');
    await limiter.check('newcomer');
    expect((await limiter.check('abuser')).outcome).toBe('blocked');
  });
});

/** A stand-in remote store whose calls never answer: the limiter's deadline and fail modes must cope. */
class HangingStore implements RateLimitStore {
  readonly kind = 'hanging';
  readonly remote = true;
  calls = 0;
  consume(): Promise<ConsumeOutcome[]> {
    this.calls += 1;
    return new Promise(() => {});
  }
  async reset(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('fail modes when the remote store does not answer', () => {
  for (const [failMode, expected] of [
    ['open', [true, true, true]],
    ['closed', [false, false, false]],
    ['local', [true, true, false]],
  ] as const) {
    it(`${failMode}: answers within the deadline`, async () => {
      const store = new HangingStore();
      const limiter = createRateLimiter({
        store,
        limits: [{ limit: 4, windowMs: 60_000 }],
        expectedInstances: 2,
        failMode,
        deadlineMs: 20,
        breaker: { consecutiveFailures: 100 },
      });
      // 'local' refuses the third check only within the minute (real clock) the first opened.
      await awayFromWindowEdge(60_000, 2_000);
      const started = performance.now();
      const results = [];
      for (let index = 0; index < 3; index += 1) results.push(await limiter.check('k'));
      expect(performance.now() - started).toBeLessThan(3 * 20 + 600);
      expect(results.map((result) => result.allowed)).toEqual(expected);
      // 'local' answers from a real (local) limiter; 'open' and 'closed' know nothing of the quota.
      const source = failMode === 'local' ? 'fallback' : 'fail-mode';
      expect(results.every((result) => result.source === source)).toBe(true);
      await limiter.close();
    });
  }

  it('opens the breaker and stops calling the store', async () => {
    const store = new HangingStore();
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 4, windowMs: 60_000 }],
      deadlineMs: 10,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 60_000 },
    });
    for (let index = 0; index < 3; index += 1) await limiter.check(`k${index}`);
    expect(limiter.fallbackActive).toBe(true);
    for (let index = 0; index < 20; index += 1) await limiter.check('k');
    expect(store.calls).toBe(3);
    await limiter.close();
  });
});

/** A remote store that fails every call while `down`, else counts in a memory store. */
class SwitchableStore implements RateLimitStore {
  readonly kind = 'switchable';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  down = false;
  calls = 0;
  consume(...args: Parameters<MemoryStore['consume']>): Promise<ConsumeOutcome[]> {
    this.calls += 1;
    if (this.down) return Promise.reject(new Error('connection refused'));
    return Promise.resolve(this.#memory.consume(...args));
  }
  async reset(key: string): Promise<void> {
    await this.#memory.reset(key);
  }
  async close(): Promise<void> {
    await this.#memory.close();
  }
}

describe("source 'fail-mode': what failMode 'open' and 'closed' answer while the store fails", () => {
  for (const failMode of ['open', 'closed', 'local'] as const)
    it(`${failMode}: the checks metric's source label is ${failMode === 'local' ? "'fallback'" : "'fail-mode'"}`, async () => {
      const registry = new Registry();
      const store = new SwitchableStore();
      store.down = true;
      const limiter = createRateLimiter({
        store,
        limits: [{ limit: 4, windowMs: 60_000 }],
        failMode,
        registry,
        breaker: { consecutiveFailures: 100 },
      });
      const result = await limiter.check('k');
      const source = failMode === 'local' ? 'fallback' : 'fail-mode';
      const outcome = failMode === 'closed' ? 'limited' : 'allowed';
      expect(result).toMatchObject({ source, outcome });
      const metrics = await registry.metrics();
      expect(metrics).toContain(
        `noa_rate_limiter_checks_total{limiter="limiter",result="${outcome}",source="${source.replace('-', '_')}"} 1`,
      );
      await limiter.close();
    });

  it("closed: the local block cache does not remember the fail mode's refusals (the store decides once back)", async () => {
    const store = new SwitchableStore();
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 4, windowMs: 60_000 }],
      failMode: 'closed',
      localBlockCache: true,
      breaker: { consecutiveFailures: 100 },
    });
    store.down = true;
    for (let index = 0; index < 3; index += 1)
      expect(await limiter.check('k')).toMatchObject({ allowed: false, source: 'fail-mode' });
    // Each of them asked the store: none was answered from the cache.
    expect(store.calls).toBe(3);
    store.down = false;
    expect(await limiter.check('k')).toMatchObject({ allowed: true, source: 'store', remaining: 3 });
    expect(store.calls).toBe(4);
    await limiter.close();
  });
});

describe('diagnostics_channel', () => {
  it('publishes every result on noa:rate-limiter:check, list and role decisions included', async () => {
    const published: RateLimitResult[] = [];
    const listener = (message: unknown) => published.push(message as RateLimitResult);
    diagnosticsChannel.subscribe('noa:rate-limiter:check', listener);
    try {
      const limiter = createRateLimiter({
        limits: [{ limit: 1, windowMs: 60_000 }],
        roles: { admin: 'unlimited' },
        allow: ['10.0.0.0/8'],
        deny: ['192.0.2.7'],
        clock: new ManualClock(start),
      });
      await limiter.check('dc-plain');
      await limiter.check('dc-plain');
      await limiter.check({ key: 'dc-denied', ip: '192.0.2.7' });
      await limiter.check({ key: 'dc-allowed', ip: '10.1.2.3' });
      await limiter.check({ key: 'dc-admin', role: 'admin' });
      await limiter.close();
    } finally {
      diagnosticsChannel.unsubscribe('noa:rate-limiter:check', listener);
    }
    expect(published.map((result) => `${result.key}:${result.outcome}`)).toEqual([
      'dc-plain:allowed',
      'dc-plain:limited',
      'dc-denied:denied',
      'dc-allowed:allowlisted',
      'dc-admin:unlimited',
    ]);
  });
});
