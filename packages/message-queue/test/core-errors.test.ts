import * as core from '@noa/core';
import { describe, expect, it } from 'vitest';
import * as queueEntry from '../src/index.js';

// A user catches what our calls throw with classes from this package's own entry: without the
// re-exports they had to add @noa/core as a direct dependency just to `instanceof` our errors.
describe("core's errors, re-exported from the main entry", () => {
  it('a bad option throws the ConfigError (and NoaError) of this entry', () => {
    const { ConfigError, MemoryProvider, NoaError, Queue } = queueEntry;
    let thrown: unknown;
    try {
      new Queue({ name: 'bad name!', provider: new MemoryProvider() });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toBeInstanceOf(NoaError);
    expect((thrown as InstanceType<typeof ConfigError>).fields).toEqual(['name']);
  });

  it("a call after close() rejects with this entry's ClosedError", async () => {
    const queue = new queueEntry.Queue({ name: 'closed', provider: new queueEntry.MemoryProvider() });
    await queue.close();
    await expect(queue.add('x', null)).rejects.toBeInstanceOf(queueEntry.ClosedError);
  });

  it("are core's own classes, not copies", () => {
    expect(queueEntry.NoaError).toBe(core.NoaError);
    expect(queueEntry.ConfigError).toBe(core.ConfigError);
    expect(queueEntry.ClosedError).toBe(core.ClosedError);
  });
});
