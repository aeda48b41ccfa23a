import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CacheEntry } from '../src/entry.js';
import { EntryCodec } from '../src/serialization/entry-codec.js';
import {
  MAX_SHARED_STRUCTURES,
  SharedStructures,
  type StructureStore,
} from '../src/serialization/shared-structures.js';

/**
 * The two Lua scripts' semantics over an array (the Redis list itself is exercised by the
 * integration tests); `wipe()` plays an eviction or FLUSHALL.
 */
class ListStore implements StructureStore {
  list: string[] = [];
  async loadStructures(newEpoch: string): Promise<string[]> {
    await Promise.resolve();
    if (this.list.length === 0) this.list.push(newEpoch);
    return [...this.list];
  }
  async appendStructures(expectedLength: number, maxLength: number, items: readonly string[]) {
    await Promise.resolve();
    if (this.list.length === expectedLength) {
      for (const item of items.slice(0, maxLength - expectedLength)) this.list.push(item);
    }
    return [...this.list];
  }
  wipe(): void {
    this.list = [];
  }
  /** Plays a restart that restored an older copy (RDB, AOF `everysec`, a failover to a lagging replica). */
  restore(snapshot: readonly string[]): void {
    this.list = [...snapshot];
  }
}

/**
 * A store in front of another whose loads read the list when called and answer when the test
 * says (`answer()`), or fail (`failNext`): a slow or timed-out read of the list. Counts loads.
 */
class HeldStore implements StructureStore {
  readonly #inner: ListStore;
  hold = false;
  failNext = 0;
  loads = 0;
  readonly #pending: (() => void)[] = [];
  constructor(inner: ListStore) {
    this.#inner = inner;
  }
  async loadStructures(newEpoch: string): Promise<string[] | undefined> {
    this.loads += 1;
    const read = this.failNext > 0 ? undefined : await this.#inner.loadStructures(newEpoch);
    if (this.failNext > 0) this.failNext -= 1;
    if (this.hold) await new Promise<void>((resolve) => this.#pending.push(resolve));
    return read;
  }
  appendStructures(expectedLength: number, maxLength: number, items: readonly string[]) {
    return this.#inner.appendStructures(expectedLength, maxLength, items);
  }
  /** Loads held, not answered yet. */
  get waiting(): number {
    return this.#pending.length;
  }
  /** Lets the held loads answer (with the list as it was when each was called). */
  answer(): void {
    for (const resume of this.#pending.splice(0)) resume();
  }
}

/** Resolves once `predicate` holds, checking after each macrotask. */
async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setImmediate(resolve));
}

function instance(store: StructureStore) {
  const structures = new SharedStructures(store, (error) => {
    throw error;
  });
  return { structures, codec: new EntryCodec('msgpack', 'zstd', 256, structures) };
}

function entry(value: unknown): CacheEntry {
  return { value, createdAt: 1, expiresAt: 10, staleUntil: 20, computeMs: 0, tags: ['t'] };
}

async function decodeOn(codec: EntryCodec, bytes: Buffer): Promise<CacheEntry> {
  await codec.prepare(bytes);
  return codec.decode(bytes);
}

// Objects of a few recurring shapes (so they get shared), nested, with some one-off shapes.
const shapeKeys = fc.constantFrom(['a', 'b'], ['a', 'b', 'c'], ['x'], ['id', 'name', 'tags'], ['b', 'a']);
const record = fc
  .tuple(
    shapeKeys,
    fc.array(fc.oneof(fc.integer(), fc.string(), fc.boolean()), { minLength: 3, maxLength: 3 }),
  )
  .map(([keys, values]) => Object.fromEntries(keys.map((key, index) => [key, values[index % 3]])));
const value = fc.oneof(
  record,
  fc.array(record, { maxLength: 6 }),
  fc.record({ page: fc.integer(), items: fc.array(record, { maxLength: 4 }) }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 3 }),
);

describe('shared msgpack structures', () => {
  it('shares repeated shapes: smaller values that every instance decodes', async () => {
    const store = new ListStore();
    const [a, b] = [instance(store), instance(store)];
    await Promise.all([a.structures.load(), b.structures.load()]);
    const value = { items: [1, 2, 3].map((id) => ({ id, name: `n${id}`, active: true })) };
    const inline = a.codec.encode(entry(value));
    a.codec.encode(entry(value)); // second sighting: the shapes are proposed
    await a.structures.settled();
    expect(a.structures.length).toBe(2);
    const shared = a.codec.encode(entry(value));
    expect(shared.length).toBeLessThan(inline.length);
    expect(shared[0]! >> 4).toBe(4);
    expect(b.structures.length).toBe(0); // b learns the structures when it first needs them
    expect(await decodeOn(b.codec, shared)).toEqual(entry(value));
    expect(b.structures.length).toBe(2);
    expect(await decodeOn(b.codec, inline)).toEqual(entry(value));
  });

  it('never decodes a value wrongly, whatever instances encode, race, and the store forgets', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('encode' as const), on: fc.nat(2), value }),
            fc.record({ op: fc.constant('decode' as const), on: fc.nat(2), pick: fc.nat() }),
            fc.record({ op: fc.constant('settle' as const), on: fc.nat(2) }),
            fc.record({ op: fc.constant('wipe' as const) }),
            fc.record({ op: fc.constant('snapshot' as const) }),
            fc.record({ op: fc.constant('restore' as const) }),
            fc.record({ op: fc.constant('restoreListOnly' as const) }),
          ),
          { maxLength: 40 },
        ),
        async (operations) => {
          const store = new ListStore();
          const nodes = [instance(store), instance(store), instance(store)];
          await Promise.all(nodes.map((node) => node.structures.load()));
          const written: { bytes: Buffer; entry: CacheEntry; epoch: number | undefined }[] = [];
          // A restart restores the list and the values of one point in time (a value written
          // after an append is in a snapshot only if the append is); connections close.
          let snapshot = { list: [...store.list], written: 0 };
          for (const operation of operations) {
            if (operation.op === 'encode') {
              const node = nodes[operation.on]!;
              const item = entry(operation.value);
              // Copy: the encoder's buffer is reused by later encodes only past this value.
              written.push({
                bytes: Buffer.from(node.codec.encode(item)),
                entry: item,
                epoch: node.structures.epoch,
              });
            } else if (operation.op === 'settle') {
              await nodes[operation.on]!.structures.settled();
            } else if (operation.op === 'snapshot') {
              snapshot = { list: [...store.list], written: written.length };
            } else if (operation.op === 'restore') {
              store.restore(snapshot.list);
              written.length = snapshot.written;
              for (const node of nodes) node.structures.distrust();
            } else if (operation.op === 'restoreListOnly') {
              // A Cluster: only the list's master restarts from its snapshot; values on the other
              // masters survive, and no instance's connection closes.
              store.restore(snapshot.list);
            } else if (operation.op === 'wipe') {
              store.wipe();
              for (const node of nodes) await node.structures.load();
            } else if (written.length > 0) {
              const { bytes, entry: expected } = written[operation.pick % written.length]!;
              const node = nodes[operation.on]!;
              let decoded: CacheEntry | undefined;
              try {
                decoded = await decodeOn(node.codec, bytes);
              } catch (error) {
                // Only a value written with shared structures may fail (its structures are not
                // those this instance or the store has now), and then as a typed error.
                expect(error).toMatchObject({ code: 'NOA_CACHE_SERIALIZATION' });
                expect(bytes[0]! >> 4).toBe(4);
              }
              if (decoded) expect(decoded).toEqual(expected);
            }
          }
          expect(store.list.length).toBeLessThanOrEqual(MAX_SHARED_STRUCTURES + 1);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('never decodes a value wrongly after the store came back with an older copy of the list', async () => {
    // Redis restarted from a snapshot taken before a shape was appended: the list has the same
    // epoch and fewer structures. Another instance then appends a different shape at the lost
    // position. The instance that knew the lost shape must neither write nor read that position
    // with its old meaning.
    const store = new ListStore();
    const a = instance(store);
    await a.structures.load();
    const snapshot = [...store.list];
    const ab = (n: number) => ({ a: n, b: `${n}` });
    a.codec.encode(entry(ab(1)));
    a.codec.encode(entry(ab(2))); // second sighting: ['a','b'] appended at position 1
    await a.structures.settled();
    expect(a.structures.length).toBe(1);
    store.restore(snapshot);
    a.structures.distrust(); // the restart closed every connection
    const b = instance(store);
    await b.structures.load();
    const xy = (n: number) => ({ x: n, y: `${n}` });
    b.codec.encode(entry(xy(1)));
    b.codec.encode(entry(xy(2)));
    await b.structures.settled();
    expect(store.list.slice(1)).toEqual([JSON.stringify(['x', 'y'])]);
    const fromB = b.codec.encode(entry(xy(3)));
    expect(fromB[0]! >> 4).toBe(4);
    // a reads b's value after reading the list again: never with its old meaning of position 1.
    await a.codec.prepare(fromB);
    expect(a.codec.decode(fromB)).toEqual(entry(xy(3)));
    // a writes again (its reload happens on its first encode after the close).
    a.codec.encode(entry(ab(3)));
    await a.structures.settled();
    const fromA = a.codec.encode(entry(ab(4)));
    await b.codec.prepare(fromA);
    expect(b.codec.decode(fromA)).toEqual(entry(ab(4)));
  });

  describe('re-reading the list for a value this instance cannot decode', () => {
    afterEach(() => vi.useRealTimers());

    /** An instance that shares ['a','b'] and a value that uses it. */
    async function writerWithValue(store: ListStore) {
      const writer = instance(store);
      await writer.structures.load();
      writer.codec.encode(entry({ a: 1, b: 1 }));
      writer.codec.encode(entry({ a: 2, b: 2 })); // second sighting: appended
      await writer.structures.settled();
      const bytes = writer.codec.encode(entry({ a: 3, b: 3 }));
      expect(bytes[5]).toBe(1);
      return { writer, bytes };
    }

    it('decodes at once when its own first read of the list failed', async () => {
      vi.useFakeTimers({ toFake: ['Date'] }); // the one-second quiet period never ends by itself
      const list = new ListStore();
      const held = new HeldStore(list);
      const reader = instance(held);
      held.failNext = 1;
      await reader.structures.load(); // timed out: no list, no epoch
      expect(reader.structures.epoch).toBeUndefined();
      const { bytes } = await writerWithValue(list);
      expect(await decodeOn(reader.codec, bytes)).toEqual(entry({ a: 3, b: 3 }));
    });

    it('does not trust a list read before a distrust (a root clear deleted it meanwhile)', async () => {
      const list = new ListStore();
      const held = new HeldStore(list);
      const writer = instance(held);
      held.hold = true;
      const loading = writer.structures.load(); // reads the list now, answers later
      await until(() => held.waiting === 1);
      const oldEpoch = writer.structures.epoch ?? Number(list.list[0]);
      list.wipe(); // the root clear deletes the list…
      writer.structures.distrust(); // …and its bus message arrives before the read's answer
      held.answer();
      await loading;
      held.hold = false;
      // The read that answered named the deleted list: no value is written with it, and the
      // encode that asks reads the list again at once (no quiet second).
      expect(writer.structures.encoder).toBeUndefined();
      await writer.structures.load(); // joins that read: a new list
      expect(writer.structures.encoder).toBeDefined();
      expect(writer.structures.epoch).not.toBe(oldEpoch);
    });

    it('decodes a value whose structures were appended while a read of the list was in flight', async () => {
      const list = new ListStore();
      const held = new HeldStore(list);
      const reader = instance(held);
      await reader.structures.load();
      held.hold = true;
      const early = reader.structures.load(); // reads the list before the append below
      const { bytes } = await writerWithValue(list);
      const decoded = decodeOn(reader.codec, bytes);
      held.answer(); // the early read answers: it has no ['a','b']
      await early;
      await until(() => held.waiting === 1); // the value's read re-reads the list
      expect(held.loads).toBe(3);
      held.answer();
      expect(await decoded).toEqual(entry({ a: 3, b: 3 }));
    });

    it('re-reads the list once for a value the store no longer has the structures of, then once a second', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const list = new ListStore();
      const { bytes } = await writerWithValue(list);
      list.wipe(); // evicted: the next load starts a new epoch
      const held = new HeldStore(list);
      const reader = instance(held);
      await reader.structures.load();
      const loadsBefore = held.loads;
      for (let read = 0; read < 5; read += 1) {
        await expect(decodeOn(reader.codec, bytes)).rejects.toMatchObject({
          code: 'NOA_CACHE_SERIALIZATION',
        });
      }
      expect(held.loads).toBe(loadsBefore + 1);
      vi.setSystemTime(Date.now() + 1_000);
      await expect(decodeOn(reader.codec, bytes)).rejects.toMatchObject({ code: 'NOA_CACHE_SERIALIZATION' });
      expect(held.loads).toBe(loadsBefore + 2);
    });

    it('while reads of the list fail, values that need it re-read it once a second, not once each', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const list = new ListStore();
      const { bytes } = await writerWithValue(list);
      const held = new HeldStore(list);
      const reader = instance(held);
      held.failNext = 1_000; // the list's node is down: every read of it fails (each after its deadline)
      for (let read = 0; read < 5; read += 1) {
        await expect(decodeOn(reader.codec, bytes)).rejects.toMatchObject({
          code: 'NOA_CACHE_SERIALIZATION',
        });
      }
      expect(held.loads).toBe(1);
      vi.setSystemTime(Date.now() + 1_000);
      held.failNext = 0; // back: the next value's read re-reads the list and decodes
      expect(await decodeOn(reader.codec, bytes)).toEqual(entry({ a: 3, b: 3 }));
      expect(held.loads).toBe(2);
    });

    it('a flood of more unknown kinds than it remembers costs a re-read per kind, then once a second', async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const list = new ListStore();
      const { bytes } = await writerWithValue(list);
      const held = new HeldStore(list);
      const reader = instance(held);
      await reader.structures.load();
      const kinds = 600; // corrupt or foreign headers: each fingerprint its own kind
      const flood = Array.from({ length: kinds }, (_, kind) => {
        const copy = Buffer.from(bytes);
        copy.writeUInt32BE(kind, 10);
        return copy;
      });
      const loadsBefore = held.loads;
      for (let round = 0; round < 3; round += 1) {
        for (const value of flood) {
          await expect(decodeOn(reader.codec, value)).rejects.toMatchObject({
            code: 'NOA_CACHE_SERIALIZATION',
          });
        }
      }
      // One re-read per kind remembered, then the quiet second: not one per read (1,800 reads).
      expect(held.loads - loadsBefore).toBeLessThanOrEqual(257);
      expect(await decodeOn(reader.codec, bytes)).toEqual(entry({ a: 3, b: 3 }));
    });
  });

  it('treats a value needing more structures than exist as undecodable, not as garbage', async () => {
    const store = new ListStore();
    const { structures, codec } = instance(store);
    await structures.load();
    const bytes = codec.encode(entry({ a: 1 }));
    bytes[5] = 3; // claims 3 structures; the store has none
    await expect(decodeOn(codec, bytes)).rejects.toMatchObject({ code: 'NOA_CACHE_SERIALIZATION' });
  });
});
