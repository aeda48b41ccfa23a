import { createL1Store, type EvictionPolicyName } from '../src/index.js';

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
