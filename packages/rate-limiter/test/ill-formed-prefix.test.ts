import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, createRateLimiter } from '../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../src/redis.js';

// A prefix with a lone UTF-16 surrogate cannot be written into Redis keys as it is (UTF-8 writes it
// as U+FFFD), as a role name cannot (refused since): with a limiter `prefix` of 'a\ud800', every key
// was stored under its digest and `resetAll()` on Redis found none of them (its SCAN pattern
// carried the prefix), while the memory store forgot them all; two store prefixes differing only in
// their lone surrogates shared their keys. Both are refused at construction.

function fieldsOf(make: () => unknown): readonly string[] {
  try {
    make();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).fields;
  }
  throw new Error('no ConfigError');
}

describe('prefixes that are not well-formed Unicode', () => {
  it('a limiter prefix is a ConfigError naming prefix', () => {
    for (const prefix of ['a\ud800', '\udc00', 'x:\ud83d'])
      expect(fieldsOf(() => createRateLimiter({ prefix, limits: [{ limit: 1, windowMs: 1_000 }] }))).toEqual([
        'prefix',
      ]);
    // A well-formed astral character is fine.
    createRateLimiter({ prefix: 'rl-\u{1f600}', limits: [{ limit: 1, windowMs: 1_000 }] }).close();
  });

  it('a RedisStore prefix is a ConfigError naming prefix', () => {
    const client = new Redis({ ...recommendedRedisOptions, lazyConnect: true });
    try {
      expect(fieldsOf(() => new RedisStore({ client, prefix: 'noa:\ud800:' }))).toEqual(['prefix']);
      expect(() => new RedisStore({ client, prefix: 'noa:\u{1f600}:' })).not.toThrow();
    } finally {
      client.disconnect();
    }
  });
});
