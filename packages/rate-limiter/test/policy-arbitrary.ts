import fc from 'fast-check';
import type { AlgorithmName, LimitPolicy } from '../src/policy.js';

/** A random policy of `algorithm` (small limits and windows; a burst for the buckets, sometimes). */
export const policyArb = (algorithm: AlgorithmName) =>
  fc.record({
    name: fc.constant('p'),
    algorithm: fc.constant(algorithm),
    limit: fc.integer({ min: 1, max: 12 }),
    windowMs: fc.integer({ min: 1, max: 3_000 }),
    burst:
      algorithm === 'token-bucket' || algorithm === 'leaky-bucket'
        ? fc.option(fc.integer({ min: 1, max: 20 }), { nil: undefined })
        : fc.constant(undefined),
  }) as fc.Arbitrary<LimitPolicy>;
