import fc from 'fast-check';
import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { commandDeadlineMs } from '../src/redis-pool.js';

const deadline = (name: string, args: (string | number)[], queryTimeoutMs = 500) =>
  commandDeadlineMs(new Command(name, args), queryTimeoutMs);

describe('commandDeadlineMs (the Redis per-command deadline)', () => {
  it('gives ordinary commands queryTimeoutMs', () => {
    expect(deadline('get', ['k'])).toBe(500);
    expect(deadline('EVALSHA', ['abc', 0])).toBe(500);
    // XREAD without BLOCK answers at once.
    expect(deadline('xread', ['COUNT', 10, 'STREAMS', 's', '0'])).toBe(500);
  });

  it('gives blocking commands their own wait plus queryTimeoutMs, and none when they block for ever', () => {
    expect(deadline('blpop', ['a', 'b', 5])).toBe(5_500);
    expect(deadline('BRPOP', ['a', '0.5'])).toBe(1_000);
    expect(deadline('blmpop', [2, 1, 'a', 'LEFT'])).toBe(2_500);
    expect(deadline('xread', ['BLOCK', 200, 'STREAMS', 's', '$'])).toBe(700);
    expect(deadline('wait', [1, 300])).toBe(800);
    expect(deadline('blpop', ['a', 0])).toBeUndefined();
    expect(deadline('xreadgroup', ['GROUP', 'g', 'c', 'BLOCK', 0, 'STREAMS', 's', '>'])).toBeUndefined();
    expect(deadline('wait', [1, 0])).toBeUndefined();
  });

  it('property: a blocking command never gets less than the wait it asked the server for', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 60_000 }),
        (ms, queryTimeoutMs) => {
          const seconds = ms / 1_000;
          expect(deadline('blpop', ['k', seconds], queryTimeoutMs)).toBeGreaterThanOrEqual(
            ms + queryTimeoutMs - 1,
          );
          expect(deadline('xread', ['BLOCK', ms, 'STREAMS', 's', '$'], queryTimeoutMs)).toBe(
            ms + queryTimeoutMs,
          );
        },
      ),
    );
  });
});
