import { ConfigError } from '@noa/core';
import type { AutoBlockPolicy } from './auto-block.js';
import type { LimitPolicy } from './policy.js';
import type { RateLimitStore } from './stores/store.js';

/**
 * Thrown at construction when another open limiter in this process already uses the same store
 * (the same `MemoryStore`, or the same Redis client and key prefix) with the same `prefix` for a
 * rule with other limits or another auto-block policy: their counters would be one. Give each
 * limiter its own `prefix`. `fields` is `['prefix']`; the code is `NOA_CONFIG_INVALID`, as for
 * any option error.
 */
export class LimiterPrefixConflictError extends ConfigError {
  constructor(prefix: string, rule: string, ours: string, theirs: string) {
    super('RateLimiter', [
      {
        path: 'prefix',
        message:
          `prefix "${prefix}" is already used on this store by another limiter whose ${rule} differs ` +
          `(${theirs}; this one: ${ours}): two limiters with one prefix share their counters. ` +
          'Give each limiter its own prefix (e.g. prefix: "login"), or the same limits to share one quota',
      },
    ]);
  }
}

interface Claim {
  /** The rule's limits and auto-block, as text: equal claims share deliberately. */
  readonly identity: string;
  readonly description: string;
}

/** Claims by the state they write to (see {@link stateScopeOf}), then `<store prefix>\0<namespace>`. */
const claimsByScope = new WeakMap<object, Map<string, Map<object, Claim>>>();

/**
 * The object whose state a store writes and the key prefix it writes under: a RedisStore's client
 * and prefix (two stores on one client and prefix share their keys), any other store itself.
 */
function stateScopeOf(store: RateLimitStore): { owner: object; prefix: string } {
  return store.stateScope ?? { owner: store, prefix: '' };
}

/** The limits of a rule as the error shows them: `fixed-window 100 per 60000 ms "default"`. */
export function describeLimits(limits: readonly LimitPolicy[]): string {
  return limits
    .map((policy) => {
      const burst = policy.burst === undefined ? '' : ` burst ${policy.burst}`;
      const offset =
        policy.windowOffsetMs === undefined
          ? ''
          : ` offset ${policy.windowOffsetMs === 'key' ? 'per key' : `${policy.windowOffsetMs} ms`}`;
      return `${policy.algorithm} ${policy.limit} per ${policy.windowMs} ms${burst}${offset} "${policy.name}"`;
    })
    .join(', ');
}

/** One rule of a limiter to claim: its namespace without the fingerprint, its name in messages. */
export interface RuleClaim {
  /** `<prefix>:<rule id>` */
  readonly base: string;
  /** `the default limits` or `role "admin"` */
  readonly label: string;
  readonly limits: readonly LimitPolicy[];
}

/** Releases the claims of a limiter dropped without `close()`, so that they do not outlive it. */
const releaseDropped = new FinalizationRegistry<() => void>((release) => release());

/**
 * Records that `limiter` writes `rules` under `prefix` on `store`, and throws
 * {@link LimiterPrefixConflictError} when an open limiter already writes one of them with other
 * limits or another auto-block policy. Returns the release, for `close()`.
 */
export function claimRules(
  store: RateLimitStore,
  prefix: string,
  rules: readonly RuleClaim[],
  block: AutoBlockPolicy | undefined,
  limiter: object,
): () => void {
  // The claims hold this token, not the limiter, which stays collectable.
  const owner = {};
  const scope = stateScopeOf(store);
  let byBase = claimsByScope.get(scope.owner);
  if (byBase === undefined) {
    byBase = new Map();
    claimsByScope.set(scope.owner, byBase);
  }
  const blockText = block === undefined ? 'no auto-block' : `auto-block ${JSON.stringify(block)}`;
  const wanted = rules.map((rule) => ({
    place: `${scope.prefix}\0${rule.base}`,
    rule,
    claim: {
      identity: `${JSON.stringify(rule.limits)} ${blockText}`,
      description: `${describeLimits(rule.limits)}, ${blockText}`,
    },
  }));
  for (const { place, rule, claim } of wanted) {
    for (const other of byBase.get(place)?.values() ?? [])
      if (other.identity !== claim.identity)
        throw new LimiterPrefixConflictError(prefix, rule.label, claim.description, other.description);
  }
  for (const { place, claim } of wanted) {
    let claims = byBase.get(place);
    if (claims === undefined) {
      claims = new Map();
      byBase.set(place, claims);
    }
    claims.set(owner, claim);
  }
  const claimed = byBase;
  const release = () => {
    for (const { place } of wanted) {
      const claims = claimed.get(place);
      claims?.delete(owner);
      if (claims?.size === 0) claimed.delete(place);
    }
  };
  releaseDropped.register(limiter, release, owner);
  return () => {
    releaseDropped.unregister(owner);
    release();
  };
}
