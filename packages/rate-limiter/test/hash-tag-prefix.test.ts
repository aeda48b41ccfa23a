import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ConfigError, createRateLimiter } from '../src/index.js';
import { RedisStore, recommendedClusterOptions, recommendedRedisOptions } from '../src/redis.js';

// Redis Cluster hashes only the part of a key inside its first `{…}`, unless that part is empty
// (`{}`): then it hashes the whole key. RedisStore tags each caller's keys `<prefix>{<key>}` so that
// its state hash and sliding-log sets share a slot; a `{}` before that tag (in the store's prefix or
// the client's ioredis keyPrefix), or a key that starts with `}` (a limiter prefix starting with
// it), hashes every key whole, so a check of a sliding log, or any adjustment (refund, block…),
// touched keys of several slots and failed with CROSSSLOT, answered by the fail mode for good.
// `test/integration/cluster-hash-tag-prefix.test.ts` shows it on a real Cluster.

const nodes = [{ host: '127.0.0.1', port: 1 }];

function configErrorOf(make: () => unknown): ConfigError {
  let caught: unknown;
  try {
    make();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

describe('prefixes that would empty the Redis Cluster hash tag', () => {
  it('a RedisStore prefix with an empty hash tag is a ConfigError naming prefix', () => {
    const client = new Redis({ ...recommendedRedisOptions, lazyConnect: true });
    try {
      for (const prefix of ['a{}:', '{}', 'rl:{}{x}:'])
        expect(configErrorOf(() => new RedisStore({ client, prefix })).fields).toEqual(['prefix']);
    } finally {
      client.disconnect();
    }
  });

  it('an ioredis keyPrefix with an empty hash tag is a ConfigError naming client (Cluster and standalone)', () => {
    const clients = [
      new Cluster(nodes, { ...recommendedClusterOptions, keyPrefix: 'x{}', lazyConnect: true }),
      new Redis({ ...recommendedRedisOptions, keyPrefix: 'app:{}', lazyConnect: true }),
    ];
    try {
      for (const client of clients) {
        const error = configErrorOf(() => new RedisStore({ client }));
        expect(error.fields).toEqual(['client']);
        expect(error.message).toContain('keyPrefix');
      }
      // The first `{` of keyPrefix + prefix counts: `{` in the keyPrefix, `}` opening the prefix.
      const split = new Redis({ ...recommendedRedisOptions, keyPrefix: 'a{', lazyConnect: true });
      clients.push(split);
      expect(configErrorOf(() => new RedisStore({ client: split, prefix: '}b:' })).fields).toEqual([
        'client',
      ]);
    } finally {
      for (const client of clients) client.disconnect();
    }
  });

  it('a limiter prefix starting with "}" is a ConfigError naming prefix', () => {
    expect(
      configErrorOf(() => createRateLimiter({ prefix: '}x', limits: [{ limit: 1, windowMs: 1_000 }] }))
        .fields,
    ).toEqual(['prefix']);
  });

  it('prefixes with a whole tag, or with braces that leave the store’s tag first, are accepted', () => {
    const clients = [
      new Cluster(nodes, { ...recommendedClusterOptions, keyPrefix: '{tenant}:', lazyConnect: true }),
      new Redis({ ...recommendedRedisOptions, keyPrefix: 'x{', lazyConnect: true }),
      new Redis({ ...recommendedRedisOptions, lazyConnect: true }),
    ];
    try {
      for (const client of clients)
        for (const prefix of ['noa:rl:', '{app}:', 'a}b:', 'x{'])
          expect(() => new RedisStore({ client, prefix })).not.toThrow();
      for (const prefix of ['rl', 'a}', 'x{y}'])
        createRateLimiter({ prefix, limits: [{ limit: 1, windowMs: 1_000 }] }).close();
    } finally {
      for (const client of clients) client.disconnect();
    }
  });
});
