import { ConfigError, type ConfigIssue } from '@noa/core';
import { afterEach, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../src/index.js';

const caches: Cache[] = [];
afterEach(async () => {
  await Promise.all(caches.splice(0).map((cache) => cache.close()));
});

/** core's parseOptions says what an option takes, then what it got (never a secret's value). */
const wanted = (what: string) => expect.stringMatching(new RegExp(`^expected ${escapeRegExp(what)}, got .+`));
const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The issues of the ConfigError that `new Cache(options)` throws. */
function issuesOf(options: unknown): ConfigIssue[] {
  try {
    caches.push(new Cache(options as CacheOptions));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('instance options', () => {
  it('refuses a Redis URL or connection options for `redis`, saying an ioredis instance is wanted', () => {
    for (const redis of ['redis://localhost:6379', { host: 'localhost', port: 6379 }]) {
      const issues = issuesOf({ redis });
      expect(issues).toEqual([
        { path: 'redis', message: wanted('an ioredis Redis or Cluster instance (not a URL)') },
      ]);
      // A URL may carry a password: its text is never echoed.
      expect(issues[0]!.message).not.toContain('localhost');
    }
  });

  it('refuses for `redis` an object with only some of the members of the RedisClient type', () => {
    // A client of another library may have some of them (node-redis has no mgetBuffer): such an
    // object was accepted and failed with a TypeError (setting up the bus), not a ConfigError.
    const method = () => Promise.resolve();
    const partial = { duplicate: method, evalsha: method, pipeline: method, on: method, publish: method };
    expect(issuesOf({ redis: partial })).toEqual([
      { path: 'redis', message: wanted('an ioredis Redis or Cluster instance (not a URL)') },
    ]);
  });

  it('gives every instance or function option its own message, never "Invalid input"', async () => {
    expect(issuesOf({ registry: 'default' })).toEqual([
      { path: 'registry', message: wanted('a prom-client Registry') },
    ]);
    expect(issuesOf({ logger: { warn() {} } })).toEqual([
      {
        path: 'logger',
        message: wanted('a logger with debug, info, warn and error methods (pino: through fromPino)'),
      },
    ]);
    expect(issuesOf({ clock: () => Date.now() })).toEqual([
      { path: 'clock', message: wanted('an object with a now() method') },
    ]);
    expect(issuesOf({ random: 0.5 })).toEqual([
      { path: 'random', message: wanted('a function returning a number in (0, 1]') },
    ]);
    expect(issuesOf({ edge: { purger: () => {} } })).toEqual([
      { path: 'edge.purger', message: wanted('an object with a purgeTags(tags) method') },
    ]);

    const cache = new Cache();
    caches.push(cache);
    const warmIssues = async (options: unknown) => {
      try {
        await cache.warm(['a'], () => 1, options as never);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).issues;
      }
      throw new Error('expected a ConfigError');
    };
    expect(await warmIssues({ signal: { aborted: false } })).toEqual([
      { path: 'signal', message: wanted('an AbortSignal') },
    ]);
    expect(await warmIssues({ onProgress: 'log' })).toEqual([
      { path: 'onProgress', message: wanted('a function') },
    ]);
  });
});
