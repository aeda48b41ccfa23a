/**
 * A count-min sketch of 4-bit counters (TinyLFU's frequency estimate): four rows, one counter
 * per row per key, the estimate is the minimum. Counters saturate at 15 and every counter is
 * halved after `sampleSize` increments, so old popularity fades (the "reset" of TinyLFU).
 */
export class CountMinSketch {
  readonly #rows = 4;
  readonly #width: number;
  readonly #mask: number;
  readonly #table: Uint8Array;
  readonly #sampleSize: number;
  #additions = 0;

  /** @param expectedKeys about the cache's entry capacity; sizes the table and the reset period. */
  constructor(expectedKeys: number) {
    let width = 16;
    while (width < expectedKeys * 2) width *= 2;
    this.#width = width;
    this.#mask = width - 1;
    this.#table = new Uint8Array(this.#rows * width);
    this.#sampleSize = Math.max(64, 10 * expectedKeys);
  }

  /** Adds one occurrence of `key`. */
  increment(key: string): void {
    const hash = hashString(key);
    let added = false;
    for (let row = 0; row < this.#rows; row += 1) {
      const index = row * this.#width + this.#slot(hash, row);
      if (this.#table[index]! < 15) {
        this.#table[index]! += 1;
        added = true;
      }
    }
    if (added) {
      this.#additions += 1;
      if (this.#additions >= this.#sampleSize) this.#halve();
    }
  }

  /** The estimated number of recent occurrences of `key` (never under-counts before a reset). */
  frequency(key: string): number {
    const hash = hashString(key);
    let min = 15;
    for (let row = 0; row < this.#rows; row += 1) {
      const value = this.#table[row * this.#width + this.#slot(hash, row)]!;
      if (value < min) min = value;
    }
    return min;
  }

  /** Forgets everything. */
  clear(): void {
    this.#table.fill(0);
    this.#additions = 0;
  }

  #slot(hash: number, row: number): number {
    // Double hashing: h1 + row * h2 gives independent-enough rows from one 32-bit hash.
    const h2 = (hash >>> 16) | 1;
    return (hash + Math.imul(row, h2)) & this.#mask;
  }

  #halve(): void {
    for (let index = 0; index < this.#table.length; index += 1) this.#table[index]! >>= 1;
    this.#additions = Math.floor(this.#additions / 2);
  }
}

/** FNV-1a over UTF-16 code units, finished with a murmur3 mix for better low bits. */
export function hashString(value: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < value.length; index += 1) {
    hash ^= value.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
