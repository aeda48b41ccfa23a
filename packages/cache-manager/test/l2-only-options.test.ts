import { ConfigError, type ConfigIssue } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Cache, type CacheOptions } from '../src/index.js';

/**
 * An object with the methods `redis` is checked for: the refusals below happen while the
 * options are parsed, before any of them is called.
 */
const redisShaped = Object.fromEntries(
  ['duplicate', 'evalsha', 'mgetBuffer', 'pipeline', 'publish', 'on'].map((name) => [name, () => {}]),
);

/** The issues of the ConfigError that `new Cache(options)` throws. */
function issuesOf(options: unknown): ConfigIssue[] {
  try {
    new Cache(options as CacheOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('NOA_CONFIG_INVALID');
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('l1: false (L2-only) options', () => {
  it('refuses l1: false without redis: a cache with no tier holds nothing', () => {
    expect(issuesOf({ l1: false })).toEqual([
      { path: 'l1', message: 'false (no L1) needs redis: a cache with neither tier holds nothing' },
    ]);
  });

  it('refuses l1: false with hotKeys > 0: nothing to keep hot', () => {
    expect(issuesOf({ l1: false, redis: redisShaped, hotKeys: 100 })).toEqual([
      { path: 'l1', message: 'false (no L1) leaves no tier for hotKeys to keep hot: set hotKeys to 0' },
    ]);
  });

  it("refuses l1: false with writeMode 'background': a set would resolve before a get on the same instance could read it", () => {
    const issues = issuesOf({ l1: false, redis: redisShaped, writeMode: 'background' });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe('l1');
    expect(issues[0]!.message).toMatch(/needs writeMode 'await'/);
  });

  it('names every conflict at once', () => {
    expect(issuesOf({ l1: false, hotKeys: 1, writeMode: 'background' }).map((issue) => issue.path)).toEqual([
      'l1',
      'l1',
      'l1',
    ]);
  });

  it('takes only false or the L1 options object: true and other values are refused naming l1', () => {
    for (const l1 of [true, 'off', 0, null]) {
      expect(issuesOf({ l1 }).map((issue) => issue.path)).toEqual(['l1']);
    }
    // A bad field inside the object is still named by its path.
    expect(issuesOf({ l1: { maxEntries: 0 } }).map((issue) => issue.path)).toEqual(['l1.maxEntries']);
  });
});
