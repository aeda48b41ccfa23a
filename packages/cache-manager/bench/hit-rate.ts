import { createL1Store, type EvictionPolicyName } from '../src/index.js';
import { loopTrace, recencyTrace, scanPollutedTrace, shiftingZipfTrace, zipfTrace } from './traces.js';

/** Replays a trace through an L1 store of `capacity` entries and returns the hit rate (0–1). */
export function hitRate(policy: EvictionPolicyName, capacity: number, trace: Uint32Array): number {
  const store = createL1Store(policy, capacity, Number.MAX_SAFE_INTEGER);
  const entry = {
    value: 1,
    createdAt: 0,
    expiresAt: Number.POSITIVE_INFINITY,
    staleUntil: Number.POSITIVE_INFINITY,
    computeMs: 0,
    tags: [],
  };
  let hits = 0;
  for (let index = 0; index < trace.length; index += 1) {
    const key = `k${trace[index]}`;
    if (store.get(key, 0) !== undefined) hits += 1;
    else store.set(key, entry, 1);
  }
  return hits / trace.length;
}

/** One trace of the hit-rate table. */
export interface HitRateTrace {
  label: string;
  /** Builds the trace on demand, so a script can free each after use (each is megabytes). */
  build: () => Uint32Array;
  /**
   * Target for adaptive/LRU: 1 where adaptive should match or beat LRU; none where LRU is the
   * ideal policy (the row shows how close adaptive comes).
   */
  goal?: number;
}

/** The traces of the hit-rate table, sized for a cache of `capacity` entries. */
export function hitRateTraces(requests: number, keySpace: number, capacity: number): HitRateTrace[] {
  const slowShift = Math.round(requests / 10);
  const fastShift = Math.round(requests / 100);
  const loopKeys = Math.round(capacity * 1.25);
  const meanAge = Math.max(1, Math.round(capacity / 4));
  return [
    { label: 'Zipf 0.8', build: () => zipfTrace(requests, keySpace, 0.8, 1), goal: 1 },
    { label: 'Zipf 1.0', build: () => zipfTrace(requests, keySpace, 1.0, 2), goal: 1 },
    { label: 'Zipf 1.2', build: () => zipfTrace(requests, keySpace, 1.2, 3), goal: 1 },
    { label: 'scan-polluted Zipf 1.0', build: () => scanPollutedTrace(requests, keySpace, 4), goal: 1 },
    {
      label: `shifting Zipf 1.0 (hot set moves every ${slowShift} requests)`,
      build: () => shiftingZipfTrace(requests, keySpace, 1.0, 5, slowShift),
      goal: 1,
    },
    // The hot set moves about as fast as the sketch ages (10 × capacity requests): history
    // barely helps and LRU is the ideal policy, so the row has no goal: it shows how close
    // adaptive comes.
    {
      label: `shifting Zipf 1.0 (hot set moves every ${fastShift} requests)`,
      build: () => shiftingZipfTrace(requests, keySpace, 1.0, 6, fastShift),
    },
    {
      label: `loop over ${loopKeys} keys, 5% random`,
      build: () => loopTrace(requests, loopKeys, 7),
      goal: 1,
    },
    // Pure recency: LRU is the right policy (no goal), the window has to grow to come close.
    {
      label: `recency (new key 25%, re-read mean age ${meanAge} keys)`,
      build: () => recencyTrace(requests, 8, meanAge),
    },
  ];
}
