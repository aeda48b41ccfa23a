import { isCompressed } from './serialization/entry-codec.js';

/**
 * Turns for decoding L2 values one at a time when several arrive together. One MGET answers up
 * to 16 reads, and a socket read often completes two or three batches: without turns, every
 * reader's continuation decodes its value in the same microtask pass, so 32–48 decoded values
 * are alive at once before any caller takes its own. When a scavenge lands in such a burst,
 * nearly every record the decoder allocated since the last one is still alive, and V8's
 * allocation-site pretenuring then moves that decoder's records to old space for the rest of
 * the process (at 100 KB values, GC cost 2–3× and L2 hits ran at half speed in those
 * processes). With turns, each decode waits until the previous reader's caller had a microtask
 * to take its value, so a burst keeps about one decoded value alive at a time.
 *
 * Use: `const turn = turns.take(bytes); if (turn) await turn;`, then decode and return
 * synchronously. Taking the turn queues its release; returning then queues the reaction of the
 * caller awaiting the reader; the release wakes the next waiter, whose continuation is queued
 * after that reaction, and queues the next release after that continuation. The turn passes on
 * at each release whatever the holder does, so a holder cannot keep it.
 */
export class DecodeTurns {
  readonly #waiting: (() => void)[] = [];
  #busy = false;

  /**
   * Undefined when the caller may decode `bytes` now: they are few and not compressed (under
   * {@link decodeTurnMinBytes}; no turn is taken), or the turn was free and is now the caller's
   * (no allocation). Else a promise of the turn.
   */
  take(bytes: Buffer): Promise<void> | undefined {
    // A compressed value may decode to a thousand times its bytes: it always takes a turn.
    if (bytes.length < decodeTurnMinBytes && !isCompressed(bytes)) return undefined;
    if (this.#busy) return new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#busy = true;
    queueMicrotask(this.#release);
    return undefined;
  }

  readonly #release = (): void => {
    const next = this.#waiting.shift();
    if (next === undefined) {
      this.#busy = false;
      return;
    }
    next();
    queueMicrotask(this.#release);
  };
}

/**
 * Values encoded in fewer bytes decode without a turn. A burst of 48 such values keeps under
 * 50 KB of decoded records alive, nothing next to the megabytes a scavenge collects at once, so
 * their decoder sites are not pretenured; waiting for a turn cost each of them a promise, its
 * resolvers and a microtask hop (15 of a 16-key batch's readers waited). On the small L2-hit row
 * (bench/l2-hit.ts, ~200-byte values, `l1: false`, 32 in flight, 2026-12-07) a get allocated
 * 3.5 KB instead of 4.0 KB and made 1.06-1.17x the reads per CPU-second (medians of four
 * alternating A/B runs).
 */
export const decodeTurnMinBytes = 1_024;
