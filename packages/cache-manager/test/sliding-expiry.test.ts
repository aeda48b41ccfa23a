import { ConfigError, delay, ManualClock } from '@noa/core';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createEntry, isFresh, slideEntry } from '../src/entry.js';
import { Cache, type CacheOptions, EntryCodec } from '../src/index.js';

const caches: Cache[] = [];
function make(options: CacheOptions = {}): Cache {
  const cache = new Cache(options);
  caches.push(cache);
  return cache;
}
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

describe('slideEntry', () => {
  const params = fc.record({
    ttlMs: fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: undefined }),
    slidingMs: fc.integer({ min: 1, max: 10_000 }),
    graceMs: fc.integer({ min: 0, max: 10_000 }),
    gaps: fc.array(fc.integer({ min: 0, max: 12_000 }), { maxLength: 30 }),
  });

  it('keeps an entry fresh exactly a window after each hit, never past its ttl, never backwards', () => {
    fc.assert(
      fc.property(params, ({ ttlMs, slidingMs, graceMs, gaps }) => {
        const createdAt = 1_000_000;
        const limit = ttlMs === undefined ? Number.POSITIVE_INFINITY : createdAt + ttlMs;
        const entry = createEntry('v', createdAt, ttlMs, graceMs, 1, [], slidingMs);
        expect(entry.expiresAt).toBe(Math.min(createdAt + slidingMs, limit));
        let now = createdAt;
        for (const gap of gaps) {
          now += gap;
          const before = entry.expiresAt;
          // Only a read that hits slides, and it hits only while fresh.
          if (!isFresh(entry, now)) {
            expect(now).toBeGreaterThanOrEqual(Math.min(limit, before));
            break;
          }
          slideEntry(entry, now);
          expect(entry.expiresAt).toBe(Math.max(before, Math.min(now + slidingMs, limit)));
          expect(entry.expiresAt).toBeLessThanOrEqual(limit);
          expect(entry.staleUntil - entry.expiresAt).toBe(graceMs);
        }
      }),
    );
  });

  it('leaves entries without a window alone', () => {
    const entry = createEntry('v', 0, 1_000, 500, 1, []);
    slideEntry(entry, 900);
    expect(entry).toMatchObject({ expiresAt: 1_000, staleUntil: 1_500 });
    expect(entry.slidingMs).toBeUndefined();
  });
});

describe('sliding entries through the L2 codec', () => {
  it('round-trip their window and bound; other entries keep the earlier bytes', () => {
    const codec = new EntryCodec('msgpack', 'none', 65_536);
    const bounded = createEntry({ n: 1 }, 1_000, 60_000, 5_000, 3, ['t'], 2_000);
    expect(codec.decode(codec.encode(bounded))).toEqual(bounded);
    const unbounded = createEntry('v', 1_000, undefined, 0, 3, [], 2_000);
    const decoded = codec.decode(codec.encode(unbounded));
    expect(decoded.maxExpiresAt).toBe(Number.POSITIVE_INFINITY);
    expect(decoded.slidingMs).toBe(2_000);
    const plain = createEntry('v', 1_000, 60_000, 0, 3, []);
    const { slidingMs: _window, maxExpiresAt: _bound, ...withoutSliding } = plain;
    expect(codec.encode(plain)).toEqual(codec.encode(withoutSliding));
  });
});

describe('slidingTtlMs on a memory cache (injected clock)', () => {
  it('refuses a bad window, per cache and per call, naming the field', async () => {
    expect(() => new Cache({ slidingTtlMs: 0 })).toThrow(ConfigError);
    const cache = make();
    await expect(cache.set('k', 1, { slidingTtlMs: -1 })).rejects.toThrow(/slidingTtlMs/);
    await expect(cache.getOrSet('k', () => 1, { slidingTtlMs: 1.5 })).rejects.toThrow(/slidingTtlMs/);
  });

  it('a factory can choose the window from its value', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock });
    await cache.getOrSet('chosen', (context) => {
      context.setOptions({ slidingTtlMs: 1_000 });
      return 'v';
    });
    clock.advance(900);
    expect(cache.getLocal('chosen')).toBe('v'); // a local read slides it too
    clock.advance(900);
    expect(await cache.get('chosen')).toBe('v');
    clock.advance(1_000);
    expect(await cache.get('chosen')).toBeUndefined();
  });

  it('l1.maxTtlMs bounds how far an L1 copy slides', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, slidingTtlMs: 1_000, l1: { maxTtlMs: 1_500 } });
    await cache.set('capped', 'v');
    clock.advance(900);
    expect(await cache.get('capped')).toBe('v');
    clock.advance(700); // 1,600: the slid window (1,900) is past the 1,500 cap
    expect(await cache.get('capped')).toBeUndefined();
  });
});

describe('sliding entries and grace back-off', () => {
  it('a stale value served after a factory failure does not slide back to fresh while read', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, slidingTtlMs: 10_000, graceMs: 60_000, graceBackoffMs: 1_000 });
    expect(await cache.getOrSet('flaky', () => 'v1')).toBe('v1');
    clock.advance(11_000); // idle past the window: in grace
    const failing = () => Promise.reject(new Error('source down'));
    expect(await cache.getOrSet('flaky', failing)).toBe('v1'); // served stale, back-off for 1 s
    clock.advance(500);
    expect(await cache.getOrSet('flaky', failing)).toBe('v1'); // within the back-off: no factory call
    clock.advance(1_000); // the back-off is over: the source gets its retry
    expect(await cache.getOrSet('flaky', () => 'v2')).toBe('v2');
  });
});

describe('warm with a sliding window', () => {
  it('gives the loaded entries the window it was passed', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, ttlMs: 60_000 });
    await cache.warm(['a'], (key) => `loaded ${key}`, { slidingTtlMs: 1_000 });
    clock.advance(1_500); // never read: past the window, within the ttl
    expect(await cache.get('a')).toBeUndefined();
  });

  it('slidingTtlMs: 0 turns the cache default off for the loaded entries', async () => {
    const clock = new ManualClock(1_000_000);
    const cache = make({ clock, ttlMs: 60_000, slidingTtlMs: 1_000 });
    await cache.warm(['b'], (key) => `loaded ${key}`, { slidingTtlMs: 0 });
    clock.advance(1_500);
    expect(await cache.get('b')).toBe('loaded b');
  });
});

describe('sliding entries and early refresh (XFetch)', () => {
  it('a sliding entry in use is refreshed early only as its ttl bound nears, not before each window ends', async () => {
    const clock = new ManualClock(1_000_000);
    const bound = clock.now() + 60_000;
    // -ln(1e-30) ≈ 69: with a compute time of a few ms, a refresh is due a few hundred ms before expiry.
    const cache = make({ clock, slidingTtlMs: 100, ttlMs: 60_000, random: () => 1e-30 });
    let calls = 0;
    const factory = async () => {
      calls += 1;
      await delay(5);
      return `v${calls}`;
    };
    expect(await cache.getOrSet('hot', factory)).toBe('v1');
    for (let read = 0; read < 10; read += 1) {
      clock.advance(50); // read twice a window: it never gets near expiring
      expect(await cache.getOrSet('hot', factory)).toBe('v1');
    }
    await delay(30);
    expect(calls).toBe(1);
    while (clock.now() < bound - 50) {
      clock.advance(50);
      expect(await cache.getOrSet('hot', factory)).toBe('v1');
    }
    await delay(30);
    expect(calls).toBe(2); // refreshed once before the bound, in background
    expect(await cache.getOrSet('hot', factory)).toBe('v2');
  });
});
