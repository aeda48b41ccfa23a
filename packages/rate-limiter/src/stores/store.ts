import type { AutoBlockPolicy } from '../auto-block.js';
import type { Decision } from '../decision.js';
import type { LimitPolicy } from '../policy.js';

/** The outcome of one request against all the limits of its key. */
export interface ConsumeOutcome {
  /** One decision per limit, in order. The request was counted only if every one allowed it. */
  decisions: Decision[];
  /** When > 0 the key is auto-blocked for this many more milliseconds (nothing was counted). */
  blockedMs: number;
}

/** True when `outcome` admitted the request: no block and every limit allowed it (so it counted). */
export function admitted(outcome: ConsumeOutcome): boolean {
  if (outcome.blockedMs > 0) return false;
  for (const decision of outcome.decisions) if (!decision.allowed) return false;
  return true;
}

/** One key's batch for {@link RateLimitStore.consumeMany}. */
export interface ConsumeRequest {
  key: string;
  limits: readonly LimitPolicy[];
  costs: readonly number[];
}

/** How a caller waits for one store call. */
export interface ConsumeOptions {
  /**
   * The caller stops waiting this many milliseconds after the call starts (and answers by its
   * fail mode). A remote store that can tell the call reached its backend later skips it,
   * counting nothing, and rejects with core's `TimeoutError`.
   */
  deadlineMs?: number;
}

/**
 * A change to a key's state outside a check (see {@link RateLimitStore.adjust}): `peek` reads,
 * `refund` gives back up to `points`, `penalize` consumes `points` even over the limit, `block`
 * blocks the key for `durationMs` as an auto-block does, `unblock` lifts a block.
 */
export type StoreAdjustment =
  | { operation: 'peek' }
  | { operation: 'refund' | 'penalize'; points: number }
  | { operation: 'block'; durationMs: number }
  | { operation: 'unblock' };

/**
 * Where limit state lives. `consume` applies `costs` as consecutive requests of one key
 * (a batch), each all-or-nothing over `limits`, atomically, and returns one outcome per cost.
 */
export interface RateLimitStore {
  /** `'memory'`, `'redis'`… for metrics and logs. */
  readonly kind: string;
  /** True when calls leave the process (deadline, breaker and fallback then apply). */
  readonly remote: boolean;
  consume(
    key: string,
    limits: readonly LimitPolicy[],
    costs: readonly number[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): ConsumeOutcome[] | Promise<ConsumeOutcome[]>;
  /**
   * Optional: several keys' batches in as few round trips as the backend allows (one script
   * call for a standalone Redis). Same semantics as one `consume` per request.
   */
  consumeMany?(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[][]>;
  /**
   * Optional, for a backend whose parts fail independently (the masters of a Redis Cluster, the
   * script calls of a large batch on one Redis): {@link consumeMany} with one promise per request,
   * so that a request whose part answered is neither held back nor failed by a part that is
   * down. The caller uses it instead of `consumeMany` for a batch of more than
   * {@link keysPerCall} keys.
   */
  consumeEach?(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[]>[];
  /**
   * Optional: how many keys one backend call carries, when a batch of up to that many is one call
   * answered or failed as a whole (a standalone Redis: 32). The caller then sends batches of that
   * size by `consumeMany`; undefined, with `consumeEach`, it sends a tick's keys by `consumeEach`.
   */
  readonly keysPerCall?: number | undefined;
  /**
   * Optional: applies `adjustment` to every limit of `key` atomically (refunds and penalties go
   * to each limit, as a request's cost does) and returns what a cost-0 check would then report,
   * counting nothing and recording no violation. Stores without it cannot peek, refund,
   * penalize or block: the limiter then throws `UnsupportedOperationError`.
   */
  adjust?(
    key: string,
    limits: readonly LimitPolicy[],
    adjustment: StoreAdjustment,
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): ConsumeOutcome | Promise<ConsumeOutcome>;
  /**
   * Optional: where the store's state lives, for the limiter's check that two limiters in one
   * process do not write one rule's keys with different limits: `owner` is the object whose state
   * the store writes (a Redis client), `prefix` the prefix of its keys. Two stores with the same
   * owner and prefix share their keys. Without it the store itself is the owner.
   */
  readonly stateScope?: { readonly owner: object; readonly prefix: string } | undefined;
  /**
   * Forgets all state of `key` (its counters and any block); resolves true when the key had some
   * (expired state does not count), false when it had none. A store that resolves nothing (written
   * before this was asked) makes `limiter.reset()` resolve false. The limiter passes a remote store
   * its `deadlineMs` as a second argument, `ConsumeOptions` (as to `consume` and `adjust`), which
   * a store may read (`RedisStore` does: a reset that reaches Redis after it changes nothing).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a custom store's `Promise<void>` reset stays valid.
  reset(key: string): Promise<boolean | void>;
  /**
   * Optional: forgets all state (counters and blocks) of every key that starts with one of
   * `namespaces` (the limiter passes its rules' namespaces, `<prefix>:<rule>:<fingerprint>:`),
   * or of every key of the store when `namespaces` is undefined. Stores without it: the limiter's
   * `resetAll()` throws `UnsupportedOperationError`.
   */
  resetAll?(namespaces?: readonly string[]): Promise<void>;
  /**
   * Optional: records that keys are written under `namespace` (`<prefix>:<rule>:<fingerprint>:`)
   * for the rule `rule` (`<prefix>:<rule>`, the namespace without its fingerprint), and may live
   * `ttlMs` from now: the record is kept at least that long (a longer one already kept stays).
   * The limiter records its rules when it starts and now and then while it runs, so that its
   * `resetAll()` also finds the keys written under a rule's earlier limits (another fingerprint)
   * by itself before a restart or by another process. Without it, `resetAll()` clears only the
   * current limits' keys.
   */
  recordNamespace?(rule: string, namespace: string, ttlMs: number): Promise<void>;
  /** Optional, with {@link recordNamespace}: the namespaces recorded for `rule` and not expired. */
  recordedNamespaces?(rule: string): Promise<string[]>;
  /**
   * Optional, for a remote store: asks the backend now (a PING), resolving once it answered and
   * rejecting with what went wrong. The limiter's `checkHealth()` calls it (one call for
   * concurrent checks, under its own deadline); a remote store without it is reported from
   * traffic alone, as `health()` does.
   */
  ping?(): Promise<void>;
  /**
   * Optional, for a remote store whose parts answer separately (`consumeEach`, a Redis Cluster):
   * resolves once ANY part answered a PING, rejecting once every part failed. The breaker probes
   * by it there (one part down must neither hold the breaker open for the others nor hide that
   * every part is gone); without it a user call is the half-open trial. {@link ping} stays the
   * readiness check, which every part must answer.
   */
  pingAnyPart?(): Promise<void>;
  /** Releases what the store owns (not a client passed in by the user). */
  close(): Promise<void>;
}

/** True when `value` looks like a {@link RateLimitStore}. */
export function isRateLimitStore(value: unknown): value is RateLimitStore {
  const candidate = value as Partial<RateLimitStore> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.consume === 'function' &&
    typeof candidate.reset === 'function' &&
    typeof candidate.close === 'function'
  );
}
