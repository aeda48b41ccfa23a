import * as core from '@noa/core';
import { describe, expect, it } from 'vitest';
import * as poolEntry from '../src/index.js';
import { createPgPool } from '../src/pg.js';

// A user catches what our calls throw with classes from this package's own entry: without the
// re-exports they had to add @noa/core as a direct dependency just to `instanceof` our errors.
describe("core's errors, re-exported from the main entry", () => {
  it('a bad option throws the ConfigError (and NoaError) of this entry', () => {
    const { ConfigError, NoaError, Pool } = poolEntry;
    const factory = { create: async () => ({}), destroy: async () => {} };
    let thrown: unknown;
    try {
      new Pool(factory, { min: 5, max: 2 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(NoaError);
    expect((thrown as InstanceType<typeof ConfigError>).fields).toEqual(['max']);
  });

  it("a driver entry's bad option is the main entry's ConfigError too", () => {
    let thrown: unknown;
    try {
      createPgPool({ primary: 'mysql://x' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(poolEntry.ConfigError);
  });

  it("are core's own classes, not copies", () => {
    expect(poolEntry.NoaError).toBe(core.NoaError);
    expect(poolEntry.ConfigError).toBe(core.ConfigError);
  });
});
