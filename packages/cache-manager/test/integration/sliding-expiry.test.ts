import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ManualClock } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import { counting, redisUp, sharedRedisCaches } from './helpers.js';

describe.skipIf(!redisUp)('sliding expiry on a real Redis', () => {
  const { prefix, redis, open } = sharedRedisCaches('cm_sliding');

  it('an L2 hit extends the Redis copy in the same call: its timings and its physical TTL', async () => {
    const clock = new ManualClock(Date.now());
    const window = 60_000;
    const writer = await open({ clock, slidingTtlMs: window, ttlMs: 10 * window });
    const { client, calls } = counting(redis!, [
      'callBuffer',
      'getBuffer',
      'mgetBuffer',
      'pipeline',
      'pexpire',
    ]);
    const reader = await open({ clock, slidingTtlMs: window, redis: client });
    await writer.set('session', { user: 7 });
    const key = `${prefix}v:session`;
    await redis!.pexpire(key, 5_000); // as if most of its physical life had gone by
    clock.advance(window / 2);
    await reader.get('absent'); // loads the script on a fresh server (EVALSHA, NOSCRIPT, EVAL)
    calls.clear();
    expect(await reader.get('session')).toEqual({ user: 7 });
    expect([...calls]).toEqual([['callBuffer', 1]]); // one round trip (EVALSHA): the read is the extension
    const stored = (await redis!.getBuffer(key))!;
    expect(stored.readDoubleBE(1)).toBe(clock.now() + window); // the frame's expiresAt moved
    expect(await redis!.pttl(key)).toBeGreaterThan(window - 5_000);
  });

  it('never rewrites a foreign value under the prefix whose first byte looks like a sliding frame', async () => {
    const clock = new ManualClock(Date.now());
    const doubles = (...values: number[]) => {
      const out = Buffer.alloc(values.length * 8);
      for (const [index, value] of values.entries()) out.writeDoubleBE(value, index * 8);
      return out;
    };
    const foreign = {
      // Text starting with "0" (0x30): its "timings" are huge doubles, its "window" larger still.
      text: Buffer.from(`0${'a'.repeat(16)}${'b'.repeat(8)}${'z'.repeat(8)} and some text of another app`),
      // Plausible timings, but what follows is not an entry of ours (no format 1 or 4 header).
      timings: Buffer.concat([
        Buffer.from([0x30]),
        doubles(clock.now() + 1_000, clock.now() + 1_000, -1, 60_000),
        Buffer.from('{"another":"app"}'),
      ]),
    };
    const reader = await open({ clock, slidingTtlMs: 60_000 });
    const plainReader = await open({ clock }); // slides after a plain read (slide.lua)
    for (const [name, bytes] of Object.entries(foreign)) {
      const key = `${prefix}v:foreign-${name}`;
      await redis!.set(key, bytes);
      const errors = reader.stats().l2Errors;
      expect(await reader.get(`foreign-${name}`)).toBeUndefined();
      expect(await reader.getMany([`foreign-${name}`, 'absent'])).toEqual([undefined, undefined]);
      expect(reader.stats().l2Errors).toBeGreaterThan(errors); // a decode error, counted
      expect(await plainReader.get(`foreign-${name}`)).toBeUndefined();
      await plainReader.get('absent'); // a later call: the background slide, if any, has run
      expect(await redis!.getBuffer(key)).toEqual(bytes);
      expect(await redis!.pttl(key)).toBe(-1);
    }
  });

  it('never extends past the ttl bound, and a stale copy is left as it is', async () => {
    const clock = new ManualClock(Date.now());
    const writer = await open({ clock, slidingTtlMs: 10_000, ttlMs: 15_000 });
    const reader = await open({ clock, slidingTtlMs: 10_000 });
    await writer.set('bounded', 'v');
    const key = `${prefix}v:bounded`;
    const bound = clock.now() + 15_000;
    // As if 9 s of its 10 s had gone by (the clock is advanced, not real time): a slide never
    // shortens a physical TTL, so the one written would otherwise stay.
    await redis!.pexpire(key, 1_000);
    clock.advance(9_000);
    expect(await reader.get('bounded')).toBe('v');
    expect((await redis!.getBuffer(key))!.readDoubleBE(1)).toBe(bound);
    const ttl = await redis!.pttl(key);
    expect(ttl).toBeLessThanOrEqual(6_000);
    expect(ttl).toBeGreaterThan(1_000);
    clock.advance(7_000); // past the bound: a miss everywhere, the bytes untouched
    const before = await redis!.getBuffer(key);
    expect(await (await open({ clock, slidingTtlMs: 10_000 })).get('bounded')).toBeUndefined();
    expect(await redis!.getBuffer(key)).toEqual(before);
  });
  it('a tag set lives until the bound of the sliding values it names, so deleteByTag finds a slid value', async () => {
    // Redis expires a tag set by the TTL it was last written with, but reads slide a value's
    // TTL without touching its tag sets (they may sit on other Cluster nodes). The set must
    // therefore last until the value's bound (its ttlMs, or forever), not its first window.
    const window = 60_000;
    const writer = await open({ slidingTtlMs: window, graceMs: 1_000 });
    await writer.set('tagged', 'v', { tags: ['sliding-tag'], ttlMs: 100 * window });
    await writer.set('tagged:unbounded', 'w', { tags: ['sliding-tag-2'] });
    expect(await redis!.pttl(`${prefix}v:tagged`)).toBeLessThanOrEqual(window + 1_000);
    expect(await redis!.pttl(`${prefix}__tag:sliding-tag`)).toBeGreaterThan(99 * window);
    expect(await redis!.pttl(`${prefix}__tag:sliding-tag-2`)).toBeGreaterThan(1_000 * window);
    // and the set still names the value once an L2 hit has slid it
    await (await open({ slidingTtlMs: window })).get('tagged');
    expect(await writer.deleteByTag('sliding-tag')).toBe(1);
    expect(await (await open({ slidingTtlMs: window })).get('tagged')).toBeUndefined();
  });
  it('expire wins over a read that slid the value between its read and its compare-and-set', async () => {
    const clock = new ManualClock(Date.now());
    const options = { clock, slidingTtlMs: 60_000, graceMs: 60_000 };
    const reader = await open(options);
    let interleave: (() => Promise<unknown>) | undefined;
    // The compare-and-set scripts as RedisTier sends them: the shared part, then their own lines.
    const lua = (name: string) =>
      readFileSync(new URL(`../../src/l2/lua/${name}.lua`, import.meta.url), 'utf8');
    const compareAndSetShas = ['replace-if-unchanged', 'replace-many-if-unchanged'].map((name) =>
      createHash('sha1')
        .update(`${lua('compare-and-set')}\n${lua(name)}`)
        .digest('hex'),
    );
    // The expiring cache's client runs another instance's L2 read (which slides the stored
    // timings) just before its next script call: the compare-and-set of expire.
    const client = new Proxy(redis!, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        if (property !== 'evalsha') return value.bind(target);
        return async (...args: unknown[]) => {
          if (!compareAndSetShas.includes(args[0] as string))
            return (value as (...all: unknown[]) => unknown).apply(target, args);
          const before = interleave;
          interleave = undefined;
          await before?.();
          return (value as (...all: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const expiring = await open({ ...options, redis: client });
    await expiring.set('expired:hot', 'v');
    clock.advance(1_000);
    interleave = () => {
      clock.advance(500); // later than expire's own read (which slid it too)
      return reader.get('expired:hot');
    };
    await expiring.expire('expired:hot');
    expect(interleave).toBeUndefined(); // the read did run in between
    // Every instance now misses (the value is only in grace), including one with no L1 copy.
    expect(await (await open(options)).get('expired:hot')).toBeUndefined();
    expect(await expiring.getOrSet('expired:hot', () => Promise.reject(new Error('down')))).toBe('v');
  });
  // A cache without a cache-level window reads with GET/MGET; an entry written with its own
  // window is then slid by a second call after the read (slide.lua), entries without one cost none.
  for (const batching of [true, false]) {
    it(`a per-entry window in a cache without one slides L2's copy too (batching ${batching})`, async () => {
      const clock = new ManualClock(Date.now());
      const window = 60_000;
      const writer = await open({ clock });
      const { client, calls } = counting(redis!, ['callBuffer', 'getBuffer', 'mgetBuffer', 'evalsha']);
      const reader = await open({ clock, batching, redis: client });
      await writer.set(`own-window:${batching}`, { user: 7 }, { slidingTtlMs: window, ttlMs: 10 * window });
      await writer.set(`no-window:${batching}`, { user: 8 }, { ttlMs: 10 * window });
      const key = `${prefix}v:own-window:${batching}`;
      await redis!.pexpire(key, 5_000); // as if most of its physical life had gone by
      clock.advance(window / 2);
      calls.clear();
      const [slid, plain] = await reader.getMany([`own-window:${batching}`, `no-window:${batching}`]);
      expect(slid).toEqual({ user: 7 });
      expect(plain).toEqual({ user: 8 });
      // The read answered first; the slide follows it.
      await vi.waitFor(async () => {
        expect((await redis!.getBuffer(key))!.readDoubleBE(1)).toBe(clock.now() + window);
      });
      expect(await redis!.pttl(key)).toBeGreaterThan(window - 5_000);
      expect(calls.get('evalsha')).toBe(1); // the sliding entry alone
      expect(calls.get('callBuffer')).toBeUndefined(); // no get-sliding.lua: plain reads
      // A single get of a plain entry sends no slide.
      const other = await open({ clock, batching, redis: client });
      calls.clear();
      expect(await other.get(`no-window:${batching}`)).toEqual({ user: 8 });
      expect(calls.get('evalsha')).toBeUndefined();
    });
  }

  it('the slide after a plain read leaves a stale sliding entry as it is', async () => {
    const clock = new ManualClock(Date.now());
    const writer = await open({ clock });
    await writer.set('own-window:stale', 'v', { slidingTtlMs: 10_000, graceMs: 60_000 });
    const key = `${prefix}v:own-window:stale`;
    const before = await redis!.getBuffer(key);
    clock.advance(11_000); // past its window, in grace: a plain read returns it, and must not revive it
    const { client, calls } = counting(redis!, ['evalsha']);
    const reader = await open({ clock, redis: client });
    calls.clear();
    expect(await reader.get('own-window:stale')).toBeUndefined();
    await vi.waitFor(() => expect(calls.get('evalsha')).toBe(1));
    await reader.get('own-window:stale'); // a round trip after the slide, which has then run
    expect(await redis!.getBuffer(key)).toEqual(before);
  });
});
