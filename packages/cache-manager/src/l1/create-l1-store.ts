import type { L1Store, RemovalListener } from './l1-store.js';
import { LruStore } from './lru-store.js';
import { AdaptivePolicy } from './policies/adaptive-policy.js';
import type { EvictionPolicy } from './policies/eviction-policy.js';
import { FifoPolicy } from './policies/fifo-policy.js';
import { LfuPolicy } from './policies/lfu-policy.js';
import { LruPolicy } from './policies/lru-policy.js';
import { TtlPolicy } from './policies/ttl-policy.js';
import { PolicyStore } from './policy-store.js';

/** The L1 eviction policies. */
export type EvictionPolicyName = 'lru' | 'lfu' | 'fifo' | 'ttl' | 'adaptive';

/** Creates the bookkeeping of a policy for `capacity` entries (the `lru` store uses lru-cache instead). */
export function createEvictionPolicy(name: EvictionPolicyName, capacity: number): EvictionPolicy {
  switch (name) {
    case 'lru':
      return new LruPolicy(capacity);
    case 'lfu':
      return new LfuPolicy(capacity);
    case 'fifo':
      return new FifoPolicy(capacity);
    case 'ttl':
      return new TtlPolicy(capacity);
    case 'adaptive':
      return new AdaptivePolicy(capacity);
  }
}

/** Creates an L1 store with the named policy, bounded by entries and bytes. */
export function createL1Store(
  name: EvictionPolicyName,
  maxEntries: number,
  maxBytes: number,
  onRemove: RemovalListener = () => {},
): L1Store {
  if (name === 'lru') return new LruStore(maxEntries, maxBytes, onRemove);
  return new PolicyStore(createEvictionPolicy(name, maxEntries), maxBytes, onRemove);
}
