import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodeTurns, decodeTurnMinBytes } from '../src/decode-turns.js';
import { EntryCodec } from '../src/index.js';

/** Bytes large enough to take a turn (uncompressed: first byte 0). */
const large = Buffer.alloc(decodeTurnMinBytes);

/**
 * `readers` readers whose reads all complete in one pass, each decoding in its turn as the
 * engine does, each awaited directly by a caller that logs when it receives its value.
 */
async function burst(readers: number): Promise<string[]> {
  const turns = new DecodeTurns();
  const log: string[] = [];
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  const read = async (reader: number) => {
    await arrived;
    const turn = turns.take(large);
    if (turn) await turn;
    log.push(`decode ${reader}`);
    return reader;
  };
  const callers = Array.from({ length: readers }, async (_, reader) => {
    const value = await read(reader);
    log.push(`receive ${value}`);
  });
  arrive();
  await Promise.all(callers);
  return log;
}

describe('DecodeTurns', () => {
  it('lets each caller receive its value before the next decode starts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 64 }), async (readers) => {
        const expected = Array.from({ length: readers }, (_, reader) => [
          `decode ${reader}`,
          `receive ${reader}`,
        ]).flat();
        expect(await burst(readers)).toEqual(expected);
      }),
      { numRuns: 30 },
    );
  });

  it('without turns the same burst decodes everything before any caller receives (why they exist)', async () => {
    const log: string[] = [];
    let arrive!: () => void;
    const arrived = new Promise<void>((resolve) => {
      arrive = resolve;
    });
    const callers = [0, 1, 2].map(async (reader) => {
      await arrived;
      log.push(`decode ${reader}`);
      const value = await Promise.resolve(reader);
      log.push(`receive ${value}`);
    });
    arrive();
    await Promise.all(callers);
    expect(log.slice(0, 3)).toEqual(['decode 0', 'decode 1', 'decode 2']);
  });

  it('is free again once a burst is over: a later lone reader takes the turn at once', async () => {
    const turns = new DecodeTurns();
    expect(turns.take(large)).toBeUndefined();
    const waiter = turns.take(large);
    expect(waiter).toBeInstanceOf(Promise);
    // A woken holder that decodes nothing still passes the turn on at the next release.
    await waiter;
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(turns.take(large)).toBeUndefined();
  });

  it('lets small uncompressed values decode at once, never waiting for a turn held by a large one', () => {
    const turns = new DecodeTurns();
    expect(turns.take(large)).toBeUndefined();
    expect(turns.take(Buffer.alloc(decodeTurnMinBytes - 1))).toBeUndefined();
    expect(turns.take(large)).toBeInstanceOf(Promise);
  });

  it('makes a compressed value take a turn whatever its length (it may decode to far more)', () => {
    const codec = new EntryCodec('msgpack', 'zstd', 1_024);
    const entry = {
      value: 'x'.repeat(100_000),
      createdAt: 0,
      expiresAt: 1,
      staleUntil: 1,
      computeMs: 0,
      tags: [],
    };
    const compressed = codec.encode(entry);
    expect(compressed.length).toBeLessThan(decodeTurnMinBytes);
    const turns = new DecodeTurns();
    expect(turns.take(large)).toBeUndefined();
    expect(turns.take(compressed)).toBeInstanceOf(Promise);
  });
});
