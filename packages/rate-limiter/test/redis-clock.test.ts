import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clusterSlot } from '../src/stores/cluster-slot.js';
import { expiryMarginMs, RedisClockOffset } from '../src/stores/redis-clock.js';

/**
 * A model of Redis and this process: Redis's clock is the local monotonic clock plus `offset`,
 * and its `TIME` is rounded down to whole ms by the script, as in check.lua.
 */
const redisTime = (localMs: number, offset: number) => Math.floor(localMs + offset);
const expired = (clock: RedisClockOffset, giveUpAtMs: number, redisNow: number) => {
  const expiry = clock.expiryFor(giveUpAtMs);
  return expiry !== undefined && redisNow > expiry;
};

/** One past call: sent at `sent`, run by Redis `queued` ms later, answered `latency` ms after that. */
const callArb = fc.record({
  gap: fc.integer({ min: 0, max: 3_000_000 }).map((micros) => micros / 1_000),
  queued: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 5_000_000 }).map((micros) => micros / 1_000),
  ),
  latency: fc.integer({ min: 0, max: 50_000 }).map((micros) => micros / 1_000),
});
// Redis's clock far ahead of performance.now(), as in production (epoch ms against process uptime).
const offsetArb = fc
  .integer({ min: 1_600_000_000_000_000, max: 1_900_000_000_000_000 })
  .map((micros) => micros / 1_000);

function learn(
  clock: RedisClockOffset,
  calls: { gap: number; queued: number; latency: number }[],
  offset: number,
) {
  let now = 1_000;
  for (const { gap, queued, latency } of calls) {
    now += gap;
    const ran = now + queued;
    clock.observe(now, redisTime(ran, offset), ran + latency);
  }
  return now;
}

describe('RedisClockOffset', () => {
  it('gives no expiry before the first reply', () => {
    expect(new RedisClockOffset().expiryFor(123)).toBeUndefined();
  });

  it('never expires a call that Redis runs before its caller gives up, however late replies were', () => {
    fc.assert(
      fc.property(
        offsetArb,
        fc.array(callArb, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 100_000 }).map((micros) => micros / 1_000),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (offset, calls, deadlineMs, when) => {
          const clock = new RedisClockOffset();
          const sent = learn(clock, calls, offset) + 1;
          const giveUpAt = sent + deadlineMs;
          const ran = sent + when * deadlineMs;
          expect(expired(clock, giveUpAt, redisTime(ran, offset))).toBe(false);
        },
      ),
    );
  });

  it('expires a call that Redis runs a few ms after its caller gave up, once one reply was prompt', () => {
    fc.assert(
      fc.property(
        offsetArb,
        fc.array(callArb, { maxLength: 20 }),
        fc.integer({ min: 1, max: 100_000 }).map((micros) => micros / 1_000),
        fc.integer({ min: 0, max: 10_000_000 }).map((micros) => micros / 1_000),
        (offset, calls, deadlineMs, lateBy) => {
          const clock = new RedisClockOffset();
          // The prompt reply comes last, so it is within the current period.
          const sent = learn(clock, [...calls, { gap: 1, queued: 0, latency: 0.3 }], offset) + 1;
          const giveUpAt = sent + deadlineMs;
          const ran = giveUpAt + expiryMarginMs + 2 + lateBy;
          expect(expired(clock, giveUpAt, redisTime(ran, offset))).toBe(true);
        },
      ),
    );
  });

  it('after Redis clock steps forward, one early "expired" reply restores the guarantee', () => {
    fc.assert(
      fc.property(
        offsetArb,
        fc.integer({ min: 1, max: 10_000_000 }).map((micros) => micros / 1_000),
        fc.array(callArb, { minLength: 1, maxLength: 20 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (offset, step, calls, runs) => {
          const clock = new RedisClockOffset();
          let now = learn(clock, calls, offset);
          const stepped = offset + step;
          let early = 0;
          for (const when of runs) {
            now += 1;
            const giveUpAt = now + 25;
            const ran = now + when * 25;
            const redisNow = redisTime(ran, stepped);
            if (expired(clock, giveUpAt, redisNow)) {
              early += 1;
              clock.observeExpired(now, redisNow, ran, giveUpAt);
            } else clock.observe(now, redisNow, ran);
            now = ran;
          }
          expect(early).toBeLessThanOrEqual(1);
        },
      ),
    );
  });

  it('an "expired" reply that arrives after the caller gave up does not reset what was learnt', () => {
    const clock = new RedisClockOffset();
    const offset = 1_700_000_000_000;
    clock.observe(0, redisTime(0.2, offset), 0.4);
    const tight = clock.expiryFor(100);
    clock.observeExpired(10, redisTime(5_010, offset), 5_010.5, 35);
    expect(clock.expiryFor(100)).toBe(tight);
  });

  it('follows a clock that drifts: samples older than two periods are forgotten', () => {
    const clock = new RedisClockOffset(1_000);
    const offset = 1_700_000_000_000;
    clock.observe(0, redisTime(0, offset), 0.5);
    const before = clock.expiryFor(10_000)!;
    // Redis's clock runs 5 ms ahead from now on; replies keep coming for two periods.
    for (let at = 100; at <= 2_100; at += 100) clock.observe(at, redisTime(at, offset + 5), at + 0.5);
    expect(clock.expiryFor(10_000)).toBe(before + 5);
  });
});

describe('clusterSlot', () => {
  it('matches the slots Redis documents (CLUSTER KEYSLOT)', () => {
    expect(clusterSlot('somekey')).toBe(11_058);
    expect(clusterSlot('foo{hash_tag}')).toBe(2_515);
    // CRC16/XMODEM check value of "123456789" is 0x31C3.
    expect(clusterSlot('123456789')).toBe(0x31c3 & 16_383);
  });

  it('hashes the UTF-8 bytes of any key (ASCII keys without encoding them)', () => {
    // Reference: CRC16/XMODEM bit by bit over the UTF-8 bytes, no table, no shortcut.
    const reference = (key: string) => {
      let crc = 0;
      for (const byte of new TextEncoder().encode(key)) {
        crc ^= byte << 8;
        for (let bit = 0; bit < 8; bit += 1)
          crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
      }
      return crc & 16_383;
    };
    fc.assert(
      fc.property(
        // ASCII, the first 1024 code points (one and two UTF-8 bytes), and any code point.
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.nat({ max: 0x3ff }).map((code) => String.fromCharCode(code)) }),
          fc.string({ unit: 'binary' }),
        ),
        (key) => {
          fc.pre(!key.includes('{'));
          expect(clusterSlot(key)).toBe(reference(key));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('hashes only a non-empty first {…} when there is one', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string(), (before, tag, after) => {
        fc.pre(!before.includes('{') && !tag.includes('}') && !tag.includes('{'));
        expect(clusterSlot(`${before}{${tag}}${after}`)).toBe(clusterSlot(tag));
        expect(clusterSlot(`${before}{${tag}}${after}`)).toBeLessThan(16_384);
      }),
    );
  });
});
