import * as core from '@noa/core';
import { describe, expect, it } from 'vitest';
import * as limiterEntry from '../src/index.js';

// A user catches what our calls throw with classes from this package's own entry: without the
// re-exports they had to add @noa/core as a direct dependency just to `instanceof` our errors.
describe("core's errors, re-exported from the main entry", () => {
  it('a bad option throws the ConfigError (and NoaError) of this entry', () => {
    const { ConfigError, NoaError, createRateLimiter } = limiterEntry;
    let thrown: unknown;
    try {
      createRateLimiter({ limits: [{ limit: -1, windowMs: 1_000 }] });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(NoaError);
    expect((thrown as InstanceType<typeof ConfigError>).fields).toEqual(['limits.0.limit']);
  });

  it("a call after close() rejects with this entry's ClosedError", async () => {
    const limiter = limiterEntry.createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    await limiter.close();
    await expect(limiter.check({ key: 'k' })).rejects.toBeInstanceOf(limiterEntry.ClosedError);
  });

  it("are core's own classes, not copies", () => {
    expect(limiterEntry.NoaError).toBe(core.NoaError);
    expect(limiterEntry.ConfigError).toBe(core.ConfigError);
    expect(limiterEntry.ClosedError).toBe(core.ClosedError);
    expect(limiterEntry.TimeoutError).toBe(core.TimeoutError);
    expect(limiterEntry.CircuitOpenError).toBe(core.CircuitOpenError);
  });
});
