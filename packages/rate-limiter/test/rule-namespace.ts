// The start of a limiter's store keys for its default limits, for tests that look at the keys.
import { type LimitInput, limitSchema } from '../src/index.js';
import { nameLimits, stateFingerprint } from '../src/policy.js';

/** `<prefix>:default:<fingerprint>:`, the namespace the limiter gives its default rule. */
export function defaultNamespace(limits: readonly LimitInput[], prefix = 'rl'): string {
  return `${prefix}:default:${stateFingerprint(nameLimits(limits.map((limit) => limitSchema.parse(limit))))}:`;
}
