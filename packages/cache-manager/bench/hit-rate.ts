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

/** The hit-rate table's traces, as [label, build] pairs (built on demand, so a script can free each after use). */
export function hitRateTraces(
  requests: number,
  keySpace: number,
  capacity: number,
): [label: string, build: () => Uint32Array][] {
  const slowShift = Math.round(requests / 10);
  const fastShift = Math.round(requests / 100);
  const loopKeys = Math.round(capacity * 1.25);
  const meanAge = Math.max(1, Math.round(capacity / 4));
  return [
    ['Zipf 0.8', () => zipfTrace(requests, keySpace, 0.8, 1)],
    ['Zipf 1.0', () => zipfTrace(requests, keySpace, 1.0, 2)],
    ['Zipf 1.2', () => zipfTrace(requests, keySpace, 1.2, 3)],
    ['scan-polluted Zipf 1.0', () => scanPollutedTrace(requests, keySpace, 4)],
    [
      `shifting Zipf 1.0 (hot set moves every ${slowShift} requests)`,
      () => shiftingZipfTrace(requests, keySpace, 1.0, 5, slowShift),
    ],
    [
      `shifting Zipf 1.0 (hot set moves every ${fastShift} requests)`,
      () => shiftingZipfTrace(requests, keySpace, 1.0, 6, fastShift),
    ],
    [`loop over ${loopKeys} keys, 5% random`, () => loopTrace(requests, loopKeys, 7)],
    [`recency (new key 25%, re-read mean age ${meanAge} keys)`, () => recencyTrace(requests, 8, meanAge)],
  ];
}
