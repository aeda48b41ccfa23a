import { randomInt } from 'node:crypto';

/** Writes numbered under one random high part before it is drawn again. */
const WRITES_PER_DRAW = 2 ** 21;

/**
 * Ids for the L2 writes of one instance: each value written carries its id (see
 * `CacheEntry.writeId`) and so does the bus message that announces it, so an instance whose
 * read of the key was in flight when the message came can tell whether it read that very value
 * (see `FillGuard`). Only equality is ever asked, never order, so no clock is involved: an id
 * is a random 32-bit part drawn every 2^21 writes, times 2^21, plus a counter, an integer below
 * 2^53 (exact in msgpack and JSON). Two writes get one id only if two draws agree (one chance
 * in 2^32) and their counters too, and it matters only if they are writes of one key: one
 * announced during a read of the other (the read fills L1), after an instance read the other
 * into L1 (its late message keeps that copy, see `applyBusMessage`, until the next change or
 * the copy's expiry), or during a run that read the other (the run is not superseded, but its
 * compare-and-set write still loses to the changed bytes).
 */
export class WriteIds {
  #high = 0;
  #count = WRITES_PER_DRAW;

  next(): number {
    if (this.#count === WRITES_PER_DRAW) {
      this.#high = randomInt(2 ** 32);
      this.#count = 0;
    }
    this.#count += 1;
    return this.#high * WRITES_PER_DRAW + (this.#count - 1);
  }
}
