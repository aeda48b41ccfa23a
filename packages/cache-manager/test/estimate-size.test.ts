import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';
import { estimateSize } from '../src/l1/estimate-size.js';

/**
 * `estimateSize` charges memory-only L1 entries (and compressed values with Redis). It promises
 * bounded work on huge values: it walks at most `budget` nodes and extrapolates the rest.
 */
describe('estimateSize', () => {
  /** An array proxy counting the elements read (`for…of` reads them by index). */
  function countingArray(length: number): { array: unknown[]; reads: () => number } {
    let reads = 0;
    const array = new Proxy(new Array<unknown>(length), {
      get(target, property, receiver) {
        if (typeof property === 'string' && /^\d+$/.test(property)) reads += 1;
        return Reflect.get(target, property, receiver);
      },
    });
    return { array, reads: () => reads };
  }

  it('reads a bounded number of elements of a huge array', () => {
    const { array, reads } = countingArray(10_000_000);
    const bytes = estimateSize(array, 100);
    expect(reads()).toBeLessThanOrEqual(100);
    // Extrapolated, not dropped: ten million slots are charged as such.
    expect(bytes).toBeGreaterThanOrEqual(80_000_000);
  });

  it('reads a bounded number of entries of a huge Map, Set or object', () => {
    let reads = 0;
    class CountingMap<K, V> extends Map<K, V> {
      override *[Symbol.iterator](): MapIterator<[K, V]> {
        for (const entry of super[Symbol.iterator]()) {
          reads += 1;
          yield entry;
        }
      }
    }
    class CountingSet<V> extends Set<V> {
      override *[Symbol.iterator](): SetIterator<V> {
        for (const entry of super[Symbol.iterator]()) {
          reads += 1;
          yield entry;
        }
      }
    }
    const entries = Array.from({ length: 100_000 }, (_, index) => [index, index] as const);
    const map = new CountingMap(entries);
    const set = new CountingSet(entries.map(([index]) => index));
    reads = 0;
    expect(estimateSize(map, 100)).toBeGreaterThan(100_000 * 8);
    expect(estimateSize(set, 100)).toBeGreaterThan(100_000 * 8);
    expect(reads).toBeLessThanOrEqual(2 * 101);
    let propertyReads = 0;
    const object = new Proxy(Object.fromEntries(entries.map(([index]) => [`k${index}`, index])), {
      get(target, property, receiver) {
        propertyReads += 1;
        return Reflect.get(target, property, receiver);
      },
    });
    expect(estimateSize(object, 100)).toBeGreaterThan(100_000 * 8);
    expect(propertyReads).toBeLessThanOrEqual(101);
  });

  it('returns for a sparse array of the largest length', () => {
    const { array, reads } = countingArray(2 ** 32 - 1);
    expect(estimateSize(array)).toBeGreaterThan(2 ** 32);
    expect(reads()).toBeLessThanOrEqual(2_000);
  });

  it('charges an ArrayBuffer its bytes, as it does a view of one', () => {
    expect(estimateSize(new ArrayBuffer(1_000_000))).toBeGreaterThanOrEqual(1_000_000);
    expect(estimateSize({ raw: new SharedArrayBuffer(1_000_000) })).toBeGreaterThanOrEqual(1_000_000);
    expect(estimateSize(new Uint8Array(1_000_000))).toBeGreaterThanOrEqual(1_000_000);
  });

  it('keeps a memory-only L1 of ArrayBuffers within its byte bound', async () => {
    const cache = new Cache({ l1: { maxBytes: 4_000_000 } });
    for (let index = 0; index < 10; index += 1) await cache.set(`k${index}`, new ArrayBuffer(1_000_000));
    const { entries, bytes } = cache.stats().l1;
    expect(bytes).toBeLessThanOrEqual(4_000_000);
    expect(entries).toBeLessThanOrEqual(4);
    await cache.close();
  });

  it('extrapolates a large value from the part it walked: within a small factor of a whole walk', () => {
    const length = 100_000;
    const values = {
      numbers: Array.from({ length }, (_, index) => index),
      records: Array.from({ length }, (_, index) => ({ id: index, ok: true, name: `n${index}` })),
      nested: { page: 1, items: Array.from({ length }, (_, index) => ({ id: index, tags: ['a', 'b'] })) },
      object: Object.fromEntries(Array.from({ length }, (_, index) => [`key${index}`, index])),
      map: new Map(Array.from({ length }, (_, index) => [index, { id: index }])),
      set: new Set(Array.from({ length }, (_, index) => `member${index}`)),
    };
    for (const [name, value] of Object.entries(values)) {
      const whole = estimateSize(value, Number.MAX_SAFE_INTEGER);
      const ratio = estimateSize(value) / whole;
      // Before, a container's own size (8 bytes a slot, its keys) was averaged into every node
      // walked, then charged again for every node not walked: quadratic, 25× for `numbers`.
      expect({ name, ratio: Math.round(ratio * 100) / 100 }).toEqual({
        name,
        ratio: expect.toSatisfy((r: number) => r >= 0.8 && r <= 1.25),
      });
    }
  });

  it('a memory-only cache keeps an array of 200,000 numbers under its default byte bound', async () => {
    const cache = new Cache();
    const numbers = Array.from({ length: 200_000 }, (_, index) => index);
    await cache.set('numbers', numbers);
    expect(await cache.get('numbers')).toBe(numbers);
    expect(cache.stats().evictions.tooLarge).toBe(0);
    expect(cache.stats().l1.bytes).toBeLessThan(4 * 1024 * 1024);
    await cache.close();
  });

  it('walks small values whole: the estimate is exact under the budget', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), (value) => {
        expect(estimateSize(value)).toBe(estimateSize(value, Number.MAX_SAFE_INTEGER));
      }),
    );
  });

  /** A linked list of `length` small records, `{ value, name, next }`. */
  function linkedList(length: number): unknown {
    let list: unknown = null;
    for (let index = 0; index < length; index += 1) list = { value: index, name: `node${index}`, next: list };
    return list;
  }

  it('charges a value deeper than the walk only for the part walked (the README states this limit)', () => {
    // Walked whole (under the budget), a list is charged all of its nodes...
    expect(estimateSize(linkedList(500))).toBe(estimateSize(linkedList(500), Number.MAX_SAFE_INTEGER));
    // ...past it, the tail below the cut is unknown and not charged: the estimate stops growing
    // with the length, far below a whole walk's (about 2.9 MB for 20,000 nodes).
    const long = linkedList(20_000);
    const whole = estimateSize(long, Number.MAX_SAFE_INTEGER);
    expect(whole).toBeGreaterThan(2_500_000);
    expect(estimateSize(long)).toBeLessThan(150_000);
    expect(estimateSize(linkedList(100_000))).toBeLessThan(150_000);
    // A deep tree of arrays alike.
    let nested: unknown = null;
    for (let index = 0; index < 20_000; index += 1) nested = [index, nested];
    expect(estimateSize(nested)).toBeLessThan(estimateSize(nested, Number.MAX_SAFE_INTEGER) / 10);
  });

  it('so a memory-only L1 keeps a deep list past l1.maxBytes by the heap it takes; maxEntries still bounds it', async () => {
    const cache = new Cache({ l1: { maxBytes: 500_000, maxEntries: 3 } });
    for (let index = 0; index < 4; index += 1) await cache.set(`list${index}`, linkedList(20_000));
    const { entries, bytes } = cache.stats().l1;
    expect(bytes).toBeLessThanOrEqual(500_000);
    // Four lists of ~2.9 MB each by a whole walk would not fit 500 KB; charged ~100 KB each,
    // every one fits the byte bound, and only maxEntries evicts.
    expect(entries).toBe(3);
    await cache.close();
  });
});
