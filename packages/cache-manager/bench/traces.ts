import { seededRandom } from './random.js';

/** Keys drawn from Zipf(`exponent`) over `keySpace` keys (rank 1 is the most popular). */
export function zipfTrace(length: number, keySpace: number, exponent: number, seed: number): Uint32Array {
  const cdf = new Float64Array(keySpace);
  let sum = 0;
  for (let rank = 1; rank <= keySpace; rank += 1) {
    sum += 1 / rank ** exponent;
    cdf[rank - 1] = sum;
  }
  for (let index = 0; index < keySpace; index += 1) cdf[index]! /= sum;
  const random = seededRandom(seed);
  const trace = new Uint32Array(length);
  for (let index = 0; index < length; index += 1) {
    const draw = random();
    let low = 0;
    let high = keySpace - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (cdf[middle]! < draw) low = middle + 1;
      else high = middle;
    }
    trace[index] = low;
  }
  return trace;
}

/**
 * Zipf(1.0) traffic polluted by scans: every `period` requests, a burst of `scanLength`
 * sequential keys that are never requested again (a batch job or a crawler walking the table).
 */
export function scanPollutedTrace(
  length: number,
  keySpace: number,
  seed: number,
  period = 5_000,
  scanLength = 2_000,
): Uint32Array {
  const base = zipfTrace(length, keySpace, 1.0, seed);
  const trace = new Uint32Array(length);
  let scanKey = keySpace; // scan keys live outside the Zipf key space
  let position = 0;
  let index = 0;
  while (position < length) {
    if (position > 0 && position % period === 0) {
      for (let step = 0; step < scanLength && position < length; step += 1) {
        trace[position] = scanKey;
        scanKey += 1;
        position += 1;
      }
    }
    if (position < length) {
      trace[position] = base[index]!;
      index += 1;
      position += 1;
    }
  }
  return trace;
}
