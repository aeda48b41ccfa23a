import type { LimitPolicy } from './policy.js';

/**
 * Where a window limit's windows start: at `k × windowMs + offset`. The algorithms count on the
 * epoch's grid; a store shifts the time it gives them by the offset (`now − offset`), so every
 * window start it keeps lies on that shifted grid, and the durations the algorithms answer
 * (resetMs, retryAfterMs, the state's ttl) hold as they are in real time.
 */

/**
 * A limit's window offset for the store key `key` (the limiter's namespace and the caller's key,
 * `<prefix>:<rule>:<fingerprint>:<key>`): `windowOffsetMs` when it is a number, a hash of the key
 * modulo `windowMs` when it is `'key'`, 0 when it is unset. The same key gets the same offset in
 * every process, on every store (the hash is computed here, never by a backend).
 */
export function windowOffsetOf(policy: LimitPolicy, key: string): number {
  const offset = policy.windowOffsetMs;
  if (offset === undefined) return 0;
  return offset === 'key' ? keyWindowOffset(key, policy.windowMs) : offset;
}

/**
 * The offset `'key'` gives `key` in a window of `windowMs`: a 53-bit hash of its UTF-16 code
 * units (two FNV-1a-style passes with different bases and primes) modulo `windowMs`, so that any window, up to a
 * year and beyond, gets offsets spread over the whole of it. Not a cryptographic hash: it only
 * spreads the windows' ends; a client choosing its key chooses its offset, which buys it nothing
 * (each key still gets one quota per window).
 */
export function keyWindowOffset(key: string, windowMs: number): number {
  let high = 0x811c9dc5;
  let low = 0x050c5d1f;
  for (let index = 0; index < key.length; index += 1) {
    const unit = key.charCodeAt(index);
    high = Math.imul(high ^ unit, 0x01000193);
    low = Math.imul(low ^ unit, 0x5bd1e995);
  }
  // 32 bits of one and 21 of the other: an integer below 2^53, exact in a double.
  return ((high >>> 0) * 0x200000 + (low >>> 11)) % windowMs;
}
