import * as core from '@noa/core';
import { describe, expect, it } from 'vitest';
import * as cacheEntry from '../src/index.js';

// A user catches what our calls throw with classes from this package's own entry: without the
// re-exports they had to add @noa/core as a direct dependency just to `instanceof` our errors.
describe("core's errors, re-exported from the main entry", () => {
  it('a bad option throws the ConfigError (and NoaError) of this entry', () => {
    const { Cache, ConfigError, NoaError } = cacheEntry;
    let thrown: unknown;
    try {
      new Cache({ ttlMs: -1 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(NoaError);
    expect((thrown as InstanceType<typeof ConfigError>).fields).toEqual(['ttlMs']);
  });

  it("a call after close() rejects with this entry's ClosedError", async () => {
    const cache = new cacheEntry.Cache({});
    await cache.close();
    await expect(cache.get('k')).rejects.toBeInstanceOf(cacheEntry.ClosedError);
  });

  it("are core's own classes, not copies", () => {
    expect(cacheEntry.NoaError).toBe(core.NoaError);
    expect(cacheEntry.ConfigError).toBe(core.ConfigError);
    expect(cacheEntry.ClosedError).toBe(core.ClosedError);
    expect(cacheEntry.TimeoutError).toBe(core.TimeoutError);
    expect(cacheEntry.CircuitOpenError).toBe(core.CircuitOpenError);
  });
});
