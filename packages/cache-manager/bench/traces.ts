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

/**
 * Zipf(`exponent`) traffic whose hot set moves: every `phaseLength` requests the rank→key
 * mapping is replaced by a fresh seeded permutation, so yesterday's most popular key becomes
 * an ordinary one. Stands for trending content (news, a social feed, a sale page) and for
 * daily cycles, where what is hot this hour is not hot the next: a policy must forget old
 * popularity, which a pure LFU never does.
 */
export function shiftingZipfTrace(
  length: number,
  keySpace: number,
  exponent: number,
  seed: number,
  phaseLength: number,
): Uint32Array {
  const ranks = zipfTrace(length, keySpace, exponent, seed);
  const random = seededRandom(seed ^ 0x5f3759df);
  const keyOfRank = new Uint32Array(keySpace);
  for (let index = 0; index < length; index += 1) {
    if (index % phaseLength === 0) shuffleIdentity(keyOfRank, random);
    ranks[index] = keyOfRank[ranks[index]!]!;
  }
  return ranks;
}

/**
 * A loop over `workingSet` keys (somewhat more than the cache holds), in a seeded order that
 * repeats every pass; a fraction `noise` of requests instead read a random key of the working
 * set. Stands for a batch job, report or poller that walks the same rows again and again. LRU
 * always evicts the key needed next (hit rate ~0); a policy that keeps a fixed part of the loop
 * hits on that part every pass.
 */
export function loopTrace(length: number, workingSet: number, seed: number, noise = 0.05): Uint32Array {
  const random = seededRandom(seed);
  const order = new Uint32Array(workingSet);
  shuffleIdentity(order, random);
  const trace = new Uint32Array(length);
  let position = 0;
  for (let index = 0; index < length; index += 1) {
    if (random() < noise) {
      trace[index] = Math.floor(random() * workingSet);
    } else {
      trace[index] = order[position]!;
      position = (position + 1) % workingSet;
    }
  }
  return trace;
}

/**
 * Fresh keys that are read a few times soon after they appear, then rarely: a fraction
 * `newKeyShare` of requests create a new key; the rest re-read an earlier key chosen by its
 * age in created keys, exponentially distributed with mean `meanAge`. Stands for sessions,
 * new posts or orders being processed, and read-after-write flows, where the newest data is
 * the hottest and old data goes cold. Recency predicts the next read; the long-run frequency
 * of old keys misleads (a pure LFU fills with keys that were popular once).
 */
export function recencyTrace(length: number, seed: number, meanAge: number, newKeyShare = 0.25): Uint32Array {
  const random = seededRandom(seed);
  const trace = new Uint32Array(length);
  let created = 0;
  for (let index = 0; index < length; index += 1) {
    if (created === 0 || random() < newKeyShare) {
      trace[index] = created;
      created += 1;
    } else {
      const age = Math.floor(-Math.log(1 - random()) * meanAge);
      trace[index] = created - 1 - (age % created);
    }
  }
  return trace;
}

/** Fills `target` with 0…n-1 in a seeded random order (Fisher–Yates). */
function shuffleIdentity(target: Uint32Array, random: () => number): void {
  for (let index = 0; index < target.length; index += 1) target[index] = index;
  for (let index = target.length - 1; index > 0; index -= 1) {
    const other = Math.floor(random() * (index + 1));
    const swap = target[index]!;
    target[index] = target[other]!;
    target[other] = swap;
  }
}
