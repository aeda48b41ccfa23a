import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

describe('error history entries', () => {
  const deadEntries = async (message: string) => {
    const queue = new Queue({ name: 'history', provider: new MemoryProvider() });
    let seen: string | undefined;
    const worker = new Worker({
      queue,
      handler: () => {
        throw new Error(message);
      },
    });
    worker.on('failed', (_id, error) => {
      seen = error.message;
    });
    try {
      await queue.add('x', null, { attempts: 1 });
      const dead = await waitFor(async () => (await queue.dlq.list())[0]);
      return { stored: dead.errors.map((entry) => entry.message), seen };
    } finally {
      await worker.close();
    }
  };

  it('keeps a message of up to 16,384 characters whole', async () => {
    const message = 'm'.repeat(16_384);
    expect(await deadEntries(message)).toEqual({ stored: [message], seen: message });
  });

  it('cuts a longer one and says so; the failed event still has it whole', async () => {
    const message = 'm'.repeat(100_000);
    const { stored, seen } = await deadEntries(message);
    expect(seen).toBe(message);
    expect(stored).toEqual([`${'m'.repeat(16_384)}… (truncated from 100000 characters)`]);
  });

  it('does not cut a surrogate pair in two', async () => {
    // '😀' is two UTF-16 units; the cut would fall between them.
    const message = `${'m'.repeat(16_383)}😀${'m'.repeat(10)}`;
    const [stored] = (await deadEntries(message)).stored;
    expect(stored).toBe(`${'m'.repeat(16_383)}… (truncated from ${message.length} characters)`);
  });
});
