import {
  type Clock,
  ClosedError,
  childLogger,
  HealthProbeGate,
  type HealthProbeOptions,
  type HealthProbeOutcome,
  type HealthReport,
  type Logger,
  parseOptions,
  probeBackend,
  probeTimedOut,
  silentLogger,
  systemClock,
  TimeoutError,
  tracingChannel,
  withDeadline,
} from '@noa/core';
import {
  type AcquireOptions,
  AcquireQueue,
  acquireOptionsSchema,
  type ParsedAcquireOptions,
} from './acquire-queue.js';
import { maxCostOf } from './algorithms/index.js';
import type { AutoBlockPolicy } from './auto-block.js';
import { type CheckInput, validateCheckInput, withCost } from './check-input.js';
import type { Decision } from './decision.js';
import {
  AcquireError,
  CostExceedsCapacityError,
  HealthCheckTimeoutError,
  InvalidAdjustmentError,
  InvalidCheckInputError,
  InvalidCostError,
  RateLimitedError,
  SyncCheckUnsupportedError,
  UnsupportedOperationError,
} from './errors.js';
import { blockedResetMs } from './headers.js';
import { checkedLimiterHealth, type LimiterHealthState, limiterHealth } from './health.js';
import { IpList } from './ip-list.js';
import { createLimiterMetrics, type LimiterMetrics } from './limiter-metrics.js';
import { type FailMode, type RateLimiterOptions, rateLimiterOptionsSchema } from './limiter-options.js';
import { LocalBlockCache } from './local-block-cache.js';
import {
  adjustedKeyLifetimeMs,
  recordRefreshMs,
  recordTtlMs,
  ruleKeyLifetimeMs,
} from './namespace-records.js';
import { type LimitPolicy, nameLimits, stateFingerprint } from './policy.js';
import { RemoteStoreCaller } from './remote-store-caller.js';
import {
  type CheckOutcome,
  checkChannelMessage,
  type DecisionSource,
  type FailModeResult,
  type LimitStatus,
  type QuotaResult,
  type RateLimitResult,
  withNeverRetryJSON,
} from './result.js';
import { claimRules, type RuleClaim } from './store-claims.js';
import { MemoryStore } from './stores/memory-store.js';
import {
  admitted,
  type ConsumeOptions,
  type ConsumeOutcome,
  type RateLimitStore,
  type StoreAdjustment,
} from './stores/store.js';

interface Rule {
  /**
   * `<prefix>:<id>:<fingerprint>:` (id `default` or `role-<role>`; see `stateFingerprint`), the
   * start of this rule's store keys.
   */
  namespace: string;
  /** `<prefix>:<id>`: the rule whatever its limits, under which the store records its namespaces. */
  base: string;
  /** How long its keys live after their last check (see `ruleKeyLifetimeMs`). */
  keyLifetimeMs: number;
  limits: LimitPolicy[];
  /** The same limits divided by `expectedInstances`, for the local fallback. */
  fallbackLimits: LimitPolicy[];
  /** The largest cost every limit can admit (see `maxCostOf`): a larger one never is. */
  maxCost: number;
  /**
   * The only limit, when there is one and no auto-block: the memory store's fast path (which
   * leaves a key with a manual block to the general path).
   */
  single: LimitPolicy | undefined;
}

export type { CheckInput };

const checkChannel = tracingChannel('rate-limiter', 'check');

/**
 * The retry time of a refusal by the local fallback's share of the limits (each instance's part
 * while the store is unreachable) of a cost above that share but within the limits: the request
 * fits once the store answers again, so it is retried as the closed fail mode says.
 */
const fallbackShareRetryMs = 1_000;

/** How long a record of the rules' namespaces may take (see `#record`); `close()` waits for it. */
const recordDeadlineMs = 5_000;

/**
 * Longest `checkHealth()`'s PING may take (or `deadlineMs`, if longer): a caller waits only its
 * `timeoutMs`, and later checks join this PING, so a frozen store must not hold it for ever.
 */
const probeDeadlineMs = 5_000;

/**
 * How long `checkHealth()`'s unanswered PING holds back the next one (ms): a store whose PING is
 * lost for good while later ones answer (not Redis, whose replies come in order) is asked again
 * after that; a PING kept by a frozen server is then one a minute, not one per call.
 */
const unansweredPingMaxMs = 60_000;

/**
 * The rate limiter: checks keys against their limits in a store, with allow/deny lists,
 * role rules, auto-blocking, a local cache of refused hot keys and, for remote stores, a
 * per-call deadline, a circuit breaker and a fail mode (see {@link RemoteStoreCaller}).
 */
export class RateLimiter implements AsyncDisposable {
  readonly store: RateLimitStore;
  readonly failMode: FailMode;
  readonly #defaultRule: Rule;
  readonly #roles = new Map<string, Rule | 'unlimited'>();
  readonly #allow: IpList;
  readonly #deny: IpList;
  readonly #block: AutoBlockPolicy | undefined;
  readonly #remote: RemoteStoreCaller | undefined;
  readonly #localBlocks: LocalBlockCache | undefined;
  readonly #fallbackStore: MemoryStore;
  readonly #metrics: LimiterMetrics;
  readonly #metricsEnabled: boolean;
  /** The `name` option: the `limiter` of what the check channel publishes. */
  readonly #name: string;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #ownsStore: boolean;
  readonly #memoryStore: MemoryStore | undefined;
  /** The memory store when the default rule has a single limit (no auto-block, no window offset). */
  readonly #memorySingle: MemoryStore | undefined;
  readonly #waiters: AcquireQueue;
  /** Gives up this limiter's claim on its rules' keys in the store (see `claimRules`). */
  readonly #releaseClaims: () => void;
  /** Refreshes the store's records of this limiter's namespaces while it runs (see {@link #record}). */
  readonly #recordTimer: NodeJS.Timeout | undefined;
  /** The records being written to a remote store, which `close()` waits for. */
  readonly #recording = new Set<Promise<void>>();
  #closed = false;
  /** `checkHealth()`'s single-flight PING (made at the first call). */
  #healthGate: HealthProbeGate<HealthReport> | undefined;
  /** When `checkHealth()`'s last PING was sent, while it has neither been answered nor failed. */
  #healthPingSentAt: number | undefined;
  readonly #deadlineMs: number;

  constructor(options: RateLimiterOptions) {
    const parsed = parseOptions('RateLimiter', rateLimiterOptionsSchema, options);
    this.#clock = parsed.clock ?? systemClock;
    this.#ownsStore = parsed.store === undefined;
    this.store = parsed.store ?? new MemoryStore({ clock: parsed.clock });
    this.#memoryStore = this.store instanceof MemoryStore ? this.store : undefined;
    this.failMode = parsed.failMode;
    this.#deadlineMs = parsed.deadlineMs;
    const claims: RuleClaim[] = [];
    const rule = (id: string, label: string, limits: Parameters<typeof nameLimits>[0]): Rule => {
      const named = nameLimits(limits);
      const base = `${parsed.prefix}:${id}`;
      claims.push({ base, label, limits: named });
      return {
        namespace: `${base}:${stateFingerprint(named)}:`,
        base,
        keyLifetimeMs: ruleKeyLifetimeMs(named, parsed.autoBlock),
        limits: named,
        fallbackLimits: divideLimits(named, parsed.expectedInstances),
        maxCost: Math.min(...named.map(maxCostOf)),
        single: named.length === 1 && parsed.autoBlock === undefined ? named[0] : undefined,
      };
    };
    this.#defaultRule = rule('default', 'default limits', parsed.limits);
    // consumeHot counts on the epoch's grid: a limit with a window offset takes consumeSingle.
    this.#memorySingle =
      this.#defaultRule.single === undefined || this.#defaultRule.single.windowOffsetMs !== undefined
        ? undefined
        : this.#memoryStore;
    // Encoded: a role name is the user's and may hold the ':' that ends a namespace, and then
    // role `a` with key `b:k` would share `rl:role-a:b:k` with role `a:b` and key `k`.
    for (const [role, limits] of Object.entries(parsed.roles))
      this.#roles.set(
        role,
        limits === 'unlimited'
          ? 'unlimited'
          : rule(`role-${encodeURIComponent(role)}`, `limits of role ${JSON.stringify(role)}`, limits),
      );
    // Before anything is started: a conflict throws with nothing to close.
    this.#releaseClaims = claimRules(this.store, parsed.prefix, claims, parsed.autoBlock, this);
    this.#allow = new IpList(parsed.allow);
    this.#deny = new IpList(parsed.deny);
    this.#block = parsed.autoBlock;
    this.#localBlocks = parsed.localBlockCache
      ? new LocalBlockCache(parsed.localBlockMaxKeys, parsed.autoBlock !== undefined)
      : undefined;
    this.#fallbackStore = new MemoryStore({ clock: parsed.clock });
    this.#metrics = createLimiterMetrics(parsed.registry, parsed.name);
    this.#metricsEnabled = parsed.registry !== undefined;
    this.#name = parsed.name;
    this.#logger = childLogger(parsed.logger ?? silentLogger, { component: 'rate-limiter' });
    this.#remote = this.store.remote
      ? new RemoteStoreCaller({
          store: this.store,
          failMode: parsed.failMode,
          deadlineMs: parsed.deadlineMs,
          breaker: parsed.breaker ?? {},
          batch: parsed.batch,
          block: parsed.autoBlock,
          metrics: this.#metrics,
          logger: this.#logger,
          clock: this.#clock,
          logIntervalMs: parsed.logIntervalMs,
          fallbackStore: this.#fallbackStore,
        })
      : undefined;
    this.#waiters = new AcquireQueue({
      check: (input) => this.check(input),
      // An admission that reaches a closed limiter still counts in a shared store: give it back.
      refund: (input, points) => this.#adjust(input, { operation: 'refund', points }, true),
      clock: this.#clock,
      logger: this.#logger,
      waiters: this.#metrics.acquireWaiters,
      waits: this.#metrics.acquireWaits,
    });
    // A store of its own is gone with the limiter: nothing to find after a restart.
    if (this.store.recordNamespace !== undefined && !this.#ownsStore) {
      this.#record();
      const rules = this.#rules();
      const every = recordRefreshMs(Math.min(...rules.map((each) => each.keyLifetimeMs)));
      this.#recordTimer = setInterval(() => this.#record(), every);
      this.#recordTimer.unref();
    }
  }

  /** The default rule and each role's (not the unlimited ones). */
  #rules(): Rule[] {
    const rules = [this.#defaultRule];
    for (const rule of this.#roles.values()) if (rule !== 'unlimited') rules.push(rule);
    return rules;
  }

  /**
   * Records in the store the namespace of each rule (or of `only`), for as long as its keys may
   * live (`lifetimeMs`, else the rule's own): a later `resetAll()`, after a restart with other
   * limits (another fingerprint), finds their keys too. Off the check path: a memory store records
   * at once; a remote store's call runs in the background, and a failure is logged (the next
   * refresh tries again).
   */
  #record(only?: Rule, lifetimeMs?: number): void {
    const store = this.store;
    for (const rule of only === undefined ? this.#rules() : [only]) {
      const ttlMs = recordTtlMs(lifetimeMs ?? rule.keyLifetimeMs);
      if (this.#memoryStore !== undefined) {
        this.#memoryStore.recordNamespaceSync(rule.base, rule.namespace, ttlMs);
        continue;
      }
      const recording: Promise<void> = withDeadline(
        store.recordNamespace!(rule.base, rule.namespace, ttlMs),
        recordDeadlineMs,
        `recording the namespace of ${rule.base} in the ${store.kind} store`,
      )
        .catch((error: unknown) => {
          this.#logger.warn(
            'rate limiter: could not record a rule’s namespace in the store (resetAll() after a change of its limits may miss keys of these)',
            {
              rule: rule.base,
              namespace: rule.namespace,
              error,
            },
          );
        })
        .finally(() => this.#recording.delete(recording));
      this.#recording.add(recording);
    }
  }

  /**
   * The limiter's clock (the `clock` option, else the system clock): the time its windows run on,
   * from which the middleware computes the legacy `X-RateLimit-Reset` epoch.
   */
  get clock(): Clock {
    return this.#clock;
  }

  /** True while the store is bypassed because its breaker is open. */
  get fallbackActive(): boolean {
    return this.#remote?.fallbackActive ?? false;
  }

  /**
   * The limiter's health, from state it keeps anyway (no store call): `up`; `degraded` while a
   * remote store is bypassed (breaker not closed, or the last check failed) and `failMode`
   * `local` or `open` answers; `down` then with `failMode: 'closed'` (every request refused),
   * and after `close()`. `details`: `store`, `failMode`, `breaker`, `fallback`; `cause`: the
   * last store error. It turns `up` at the first check the store answers. An idle limiter reports
   * `up` whatever its store does: for a readiness probe, use {@link RateLimiter.checkHealth}.
   */
  health(): HealthReport {
    return limiterHealth(this.#healthState());
  }

  /**
   * Asks the store now (its `ping()`: for `RedisStore`, a PING of the node, of the Sentinel
   * client's current master, or of every master a Cluster client knows), then reports as
   * {@link RateLimiter.health} does, corrected by the answer: no answer or an error is the fail
   * mode's verdict (`degraded`, `down` with `failMode: 'closed'`, the error as `cause`); an answer
   * with the breaker closed is `up`; a breaker not closed keeps its verdict. `details.probe`:
   * `answered`, `failed`, `timeout`, or `unsupported` (a custom remote store without `ping()`).
   * Never rejects but for bad options (`ConfigError`); a store in this process answers as
   * `health()` and a closed limiter `down`, without I/O. The PING does not feed the breaker (see
   * the README, "Readiness").
   *
   * `options` (@noa/core's `healthProbeOptionsSchema`): with no answer within `timeoutMs`
   * (default 500 ms) the report's `cause` is a `HealthCheckTimeoutError`
   * (`NOA_RATE_LIMIT_HEALTH_CHECK_TIMEOUT`) while the PING goes on (up to 5 s, or `deadlineMs` if
   * longer); concurrent calls share one PING, and an answer younger than `maxAgeMs` (default 1 s)
   * is returned again without one.
   */
  checkHealth(options?: HealthProbeOptions): Promise<HealthReport> {
    this.#healthGate ??= new HealthProbeGate<HealthReport>({
      probe: async () => {
        const ping = this.store.ping?.bind(this.store);
        const deadlineMs = Math.max(this.#deadlineMs, probeDeadlineMs);
        const operation = 'rate-limiter health PING';
        let probe: HealthProbeOutcome | undefined;
        if (ping === undefined) probe = undefined;
        // The last PING, past its deadline, is still unanswered (a server frozen with its
        // connection open, where ioredis keeps every command): for a while no other is sent
        // after it, one per readiness probe, but the timeout is reported at once.
        else if (
          this.#healthPingSentAt !== undefined &&
          performance.now() - this.#healthPingSentAt < unansweredPingMaxMs
        )
          probe = probeTimedOut(
            new TimeoutError(operation, deadlineMs, { details: { unansweredPing: true } }),
          );
        else {
          const sentAt = performance.now();
          this.#healthPingSentAt = sentAt;
          const sent = Promise.resolve().then(ping);
          const answered = () => {
            if (this.#healthPingSentAt === sentAt) this.#healthPingSentAt = undefined;
          };
          sent.then(answered, answered);
          probe = await probeBackend(() => sent, deadlineMs, operation);
        }
        return checkedLimiterHealth(this.#healthState(), probe);
      },
      timedOut: (timeoutMs) =>
        checkedLimiterHealth(this.#healthState(), probeTimedOut(new HealthCheckTimeoutError(timeoutMs))),
      // Nothing to ask: a closed limiter is down, one with a store in this process as health() says.
      closed: () => (this.#closed || this.#remote === undefined ? this.health() : undefined),
    });
    return this.#healthGate.check(options);
  }

  #healthState(): LimiterHealthState {
    return {
      closed: this.#closed,
      store: this.store.kind,
      failMode: this.failMode,
      remote:
        this.#remote === undefined
          ? undefined
          : { breaker: this.#remote.breakerState, lastFailure: this.#remote.lastFailure },
      now: Date.now(),
    };
  }

  /** The limits that apply to `role` (the default limits when the role has none). */
  limitsFor(role?: string): readonly LimitPolicy[] {
    const rule = role === undefined ? undefined : this.#roles.get(role);
    return rule === undefined ? this.#defaultRule.limits : rule === 'unlimited' ? [] : rule.limits;
  }

  /**
   * Checks (and counts, when allowed) one request. Never rejects because of the store (see
   * `failMode`); rejects only after `close()`, for an input that is not a check
   * ({@link InvalidCheckInputError}: a missing or empty key, an unknown field) or for a cost that is
   * not a non-negative integer ({@link InvalidCostError}). A
   * cost above what a limit can ever admit resolves as refused, `outcome: 'exceeds-capacity'`.
   * `cost` is the request's points when the input does not give them (`check(key, 5)`, as
   * rate-limiter-flexible's `consume(key, points)`); given in both places, the input is refused
   * (`InvalidCheckInputError`, field `cost`).
   */
  check(input: CheckInput | string, cost?: number): Promise<RateLimitResult> {
    // The commonest call, one point of a live key on the memory store with one limit, skips
    // #decide (which answers every other case, a new key included).
    if (
      cost === undefined &&
      typeof input === 'string' &&
      this.#memorySingle !== undefined &&
      !this.#closed
    ) {
      const decision = this.#memorySingle.consumeHot(input, this.#defaultRule.single!, this.#defaultRule);
      if (decision !== undefined) return Promise.resolve(this.#hotResult(input, decision));
    }
    let decided: RateLimitResult | Promise<RateLimitResult>;
    try {
      // #decide applies the cost: withCost called here would be inlined into check() by V8,
      // taking the room the hot path needs (see consumeHot).
      decided = this.#decide(input, 'check', cost);
    } catch (error) {
      return Promise.reject(error);
    }
    return decided instanceof Promise ? decided : Promise.resolve(decided);
  }

  /**
   * {@link check} without the promise, for a limiter on a {@link MemoryStore} (whose decisions
   * are synchronous): the same result, returned directly. Throws where `check` rejects, and
   * {@link SyncCheckUnsupportedError} when the store is remote (use `check`).
   */
  checkSync(input: CheckInput | string, cost?: number): RateLimitResult {
    // Refused on a remote store even for inputs the lists would answer: callers learn it at once.
    if (this.#memoryStore === undefined) throw new SyncCheckUnsupportedError(this.store.kind);
    return this.#decide(input, 'checkSync', cost) as RateLimitResult;
  }

  /** The result when it is known synchronously (memory store, lists), else its promise. */
  #decide(
    given: CheckInput | string,
    method: string,
    givenCost: number | undefined,
  ): RateLimitResult | Promise<RateLimitResult> {
    const input = withCost(given, givenCost, method) as CheckInput | string;
    if (this.#closed) throw new ClosedError('RateLimiter');
    // Only an object (or an empty string) pays for the checks: a plain key is the common case.
    if (typeof input !== 'string' || input === '') validateCheckInput(input, method);
    // A plain string key is the common case: read the fields without building an object.
    const key = typeof input === 'string' ? input : input.key;
    const ip = typeof input === 'string' ? undefined : input.ip;
    const roleName = typeof input === 'string' ? undefined : input.role;
    const cost = typeof input === 'string' ? 1 : (input.cost ?? 1);
    if (cost !== 1 && !(Number.isInteger(cost) && cost >= 0)) throw new InvalidCostError(cost);
    if (ip !== undefined) {
      if (this.#deny.has(ip)) return this.#listed(key, 'denied');
      if (this.#allow.has(ip)) return this.#listed(key, 'allowlisted');
    }
    const role = roleName === undefined ? undefined : this.#roles.get(roleName);
    if (role === 'unlimited') return this.#listed(key, 'unlimited');
    const rule = role ?? this.#defaultRule;
    if (cost > rule.maxCost) return this.#beyondCapacity(key, rule, cost);
    if (this.#memoryStore !== undefined) {
      if (rule.single !== undefined) {
        const decision = this.#memoryStore.consumeSingle(key, rule.single, cost, rule.namespace);
        if (decision !== undefined) return this.#singleResult(key, decision);
      }
      return this.#result(
        key,
        this.#memoryStore.consumeOne(key, rule.limits, cost, this.#block, rule.namespace),
        'store',
      );
    }
    const storeKey = rule.namespace + key;
    if (this.#localBlocks !== undefined) {
      const cached = this.#localBlocks.lookup(storeKey, this.#clock.now(), cost);
      if (cached !== undefined) return this.#result(key, cached, 'local-cache');
    }
    return new Promise((resolve) => {
      this.#remote!.submit(storeKey, rule, cost, (outcome, source) =>
        resolve(this.#finish(key, storeKey, cost, outcome, source)),
      );
    });
  }

  /**
   * A cost above what a limit of `rule` can ever admit: refused whatever the key's state, as
   * `exceeds-capacity` with `retryAfterMs` Infinity, so that nobody retries it. The store is asked
   * only for the key's state, for the `RateLimit` fields (a cost-0 check: nothing is counted, no
   * violation recorded, nothing for the local block cache to remember but a real block).
   */
  #beyondCapacity(key: string, rule: Rule, cost: number): RateLimitResult | Promise<RateLimitResult> {
    const refuse = (outcome: ConsumeOutcome, source: DecisionSource): RateLimitResult =>
      this.#result(key, beyondCapacity(outcome, rule.limits, cost), source, true, true);
    if (this.#memoryStore !== undefined)
      return refuse(this.#memoryStore.consumeOne(key, rule.limits, 0, this.#block, rule.namespace), 'store');
    const storeKey = rule.namespace + key;
    if (this.#localBlocks !== undefined) {
      const cached = this.#localBlocks.lookup(storeKey, this.#clock.now());
      if (cached !== undefined) return refuse(cached, 'local-cache');
    }
    return new Promise((resolve) => {
      this.#remote!.submit(storeKey, rule, 0, (outcome, source) => {
        // Asked at cost 0: the store's admission leaves a refusal remembered for the key's real costs.
        const known = this.#localBlocks?.settle(storeKey, outcome, source === 'store', this.#clock.now(), 0);
        resolve(known === undefined ? refuse(outcome, source) : refuse(known, 'local-cache'));
      });
    });
  }

  /**
   * Like {@link check}, but rejects with {@link RateLimitedError} when the request is refused, and
   * with {@link CostExceedsCapacityError} when it never can be admitted (`exceeds-capacity`).
   */
  async consume(given: CheckInput | string, cost?: number): Promise<RateLimitResult> {
    const input = withCost(given, cost, 'consume') as CheckInput | string;
    const result = await this.check(input);
    if (result.outcome === 'exceeds-capacity') {
      const cost = typeof input === 'string' ? 1 : (input.cost ?? 1);
      // From the policy, not the result: a fail-mode result names no limits.
      const above = this.limitsFor(typeof input === 'string' ? undefined : input.role)
        .filter((policy) => cost > maxCostOf(policy))
        .map((policy) => policy.name);
      throw new CostExceedsCapacityError(result.key, cost, above);
    }
    if (!result.allowed)
      throw new RateLimitedError(result.key, result.retryAfterMs, result.outcome, { result });
    return result;
  }

  /**
   * Waits until the request is admitted instead of refusing it (for calls to a third-party API
   * under a quota), and resolves with the admitting result. Callers of one key in this process wait
   * in arrival order, and only the first one's request goes to the store, after the last refusal's
   * `retryAfterMs` (no polling). Rejects with {@link AcquireError} after `timeoutMs` (default
   * 10 s), at once when `signal` aborts, when `maxQueue` callers (default 1,000) already wait for the
   * key, for a deny-listed IP, for a cost that even an unused key refuses, and as soon as a refusal
   * (a block, a long window) shows the request cannot be admitted before its timeout. Rejects with
   * `ClosedError` on `close()`, unless its timeout had passed by the clock (`timeout`) or its
   * signal aborted (`aborted`) before. This limiter's `reset`, `unblock`, `refund`, `block` and `penalize`
   * of the key make the head check again at once. Plain `check()` calls do not queue and compete
   * with the waiters. An admission with `delayMs` (queueing leaky bucket) resolves once the delay
   * has passed (the caller goes at once), or is refused and given back when it would end too late.
   */
  acquire(input: CheckInput | string, options: AcquireOptions = {}): Promise<RateLimitResult> {
    if (this.#closed) return Promise.reject(new ClosedError('RateLimiter'));
    let parsed: ParsedAcquireOptions;
    try {
      validateCheckInput(input, 'acquire');
      parsed = parseOptions('acquire', acquireOptionsSchema, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const key = typeof input === 'string' ? input : input.key;
    const ip = typeof input === 'string' ? undefined : input.ip;
    const roleName = typeof input === 'string' ? undefined : input.role;
    const cost = typeof input === 'string' ? 1 : (input.cost ?? 1);
    if (!(Number.isInteger(cost) && cost >= 0)) return Promise.reject(new InvalidCostError(cost));
    if (ip !== undefined) {
      if (this.#deny.has(ip)) {
        this.#metrics.acquireWaits.observe({ result: 'denied' }, 0);
        return Promise.reject(new AcquireError(key, 'denied', 0, Number.POSITIVE_INFINITY));
      }
      // Never limited, so never waits.
      if (this.#allow.has(ip)) return this.check(input);
    }
    const role = roleName === undefined ? undefined : this.#roles.get(roleName);
    if (role === 'unlimited') return this.check(input);
    const rule = role ?? this.#defaultRule;
    // Refused even by an empty key (more than a limit holds, or than the queueing leaky bucket
    // can delay): no wait could end in an admission.
    if (cost > rule.maxCost) {
      this.#metrics.acquireWaits.observe({ result: 'exceeds-capacity' }, 0);
      return Promise.reject(new AcquireError(key, 'exceeds-capacity', 0, Number.POSITIVE_INFINITY));
    }
    return this.#waiters.acquire(rule.namespace + key, input, key, cost, parsed);
  }

  /** Keys with callers waiting in {@link acquire} (0 when nobody waits: the queues do not leak). */
  get waitingKeys(): number {
    return this.#waiters.keys;
  }

  /**
   * What `check` would answer for a cost of 0, counting nothing: no point, no violation, no
   * `checks_total` metric and no tracing event (it increments `adjustments_total{operation="peek"}`).
   * The IP lists apply as in `check`. When a remote store fails: with `failMode: 'local'` it
   * answers from the local fallback (`source: 'fallback'`), as do the other adjustments; with
   * `'open'` or `'closed'` it rejects.
   */
  peek(input: CheckInput | string): Promise<QuotaResult> {
    return this.#adjust(input, { operation: 'peek' });
  }

  /**
   * Gives back up to `points` (default 1) consumed by `input`'s key in its current window or
   * bucket, in every limit of its rule, never past an empty state; points of a window that has
   * moved on are not given back. For a request that should not count after all (a failed login
   * that turned out fine, a response to skip). Resolves to the key's state after it (as `peek`).
   */
  refund(input: CheckInput | string, points = 1): Promise<QuotaResult> {
    if (!Number.isInteger(points) || points < 0)
      return Promise.reject(new InvalidAdjustmentError('points', points, 'a non-negative integer'));
    return this.#adjust(input, { operation: 'refund', points });
  }

  /**
   * Consumes `points` from `input`'s key even when they do not fit (a refused request is never
   * counted, a penalty is), down to `remaining` 0 and never below. Resolves to the key's state
   * after it (as `peek`).
   */
  penalize(input: CheckInput | string, points: number): Promise<QuotaResult> {
    if (!Number.isInteger(points) || points < 0)
      return Promise.reject(new InvalidAdjustmentError('points', points, 'a non-negative integer'));
    return this.#adjust(input, { operation: 'penalize', points });
  }

  /**
   * Blocks `input`'s key for `durationMs` from now, exactly as an auto-block does (checks answer
   * `blocked`, with `Retry-After` and `RateLimit` showing the block's end), with or without the
   * `autoBlock` option. Replaces any current block; repeat-offender growth is left to auto-blocks.
   * `durationMs` is at most 2^53 − 1, as autoBlock's `blockMs`: Redis refuses a block end far
   * past it, and that refusal, a store failure, would feed the breaker.
   */
  block(input: CheckInput | string, durationMs: number): Promise<QuotaResult> {
    if (!Number.isSafeInteger(durationMs) || durationMs <= 0)
      return Promise.reject(
        new InvalidAdjustmentError('durationMs', durationMs, 'a positive integer of at most 2^53 - 1'),
      );
    return this.#adjust(input, { operation: 'block', durationMs });
  }

  /**
   * Lifts a block of `input`'s key (manual or automatic) and clears its recent violations. The
   * repeat-offender history stays (the block ends now, and `forgetAfterMs` counts from now), so a
   * quick repeat offence still gets a longer block; `reset()` forgets it with the counters.
   */
  unblock(input: CheckInput | string): Promise<QuotaResult> {
    return this.#adjust(input, { operation: 'unblock' });
  }

  /**
   * `afterClose`: the refund of an unclaimed acquire() admission, which may run after `close()`
   * on a remote store (the store is the user's and still open; a memory store's state is gone).
   */
  async #adjust(
    input: CheckInput | string,
    adjustment: StoreAdjustment,
    afterClose = false,
  ): Promise<QuotaResult> {
    if (this.#closed && !(afterClose && this.#remote !== undefined)) throw new ClosedError('RateLimiter');
    const { operation } = adjustment;
    validateCheckInput(input, operation);
    const key = typeof input === 'string' ? input : input.key;
    const ip = typeof input === 'string' ? undefined : input.ip;
    const roleName = typeof input === 'string' ? undefined : input.role;
    // Only a peek answers as a check would; the other operations act on the key whatever its IP.
    if (operation === 'peek' && ip !== undefined) {
      if (this.#deny.has(ip)) return this.#listed(key, 'denied', false);
      if (this.#allow.has(ip)) return this.#listed(key, 'allowlisted', false);
    }
    const role = roleName === undefined ? undefined : this.#roles.get(roleName);
    if (role === 'unlimited') return this.#listed(key, 'unlimited', false);
    const rule = role ?? this.#defaultRule;
    const store = this.store;
    if (store.adjust === undefined)
      throw new UnsupportedOperationError(operation, `the ${store.kind} store has no adjust() method`);
    if (this.#metricsEnabled) this.#metrics.adjustments.inc({ operation });
    const storeKey = rule.namespace + key;
    // A long manual block keeps the key beyond the rule's lifetime: so must its record (a record
    // kept between refreshes outlasts the lifetime by one refresh interval at least).
    const adjustedLifetimeMs = adjustedKeyLifetimeMs(rule.limits, adjustment, this.#block);
    if (
      adjustedLifetimeMs !== undefined &&
      adjustedLifetimeMs > rule.keyLifetimeMs + recordRefreshMs(rule.keyLifetimeMs) &&
      this.#recordTimer !== undefined &&
      !this.#closed
    )
      this.#record(rule, adjustedLifetimeMs);
    if (this.#memoryStore !== undefined) {
      const outcome = this.#memoryStore.adjust(
        key,
        rule.limits,
        adjustment,
        this.#block,
        undefined,
        rule.namespace,
      );
      if (operation !== 'peek') this.#waiters.wake(storeKey);
      return this.#result(key, outcome, 'store', false);
    }
    let outcome: ConsumeOutcome;
    let source: QuotaResult['source'] = 'store';
    try {
      outcome = await this.#remote!.adjust(
        (options) => Promise.resolve(store.adjust!(storeKey, rule.limits, adjustment, this.#block, options)),
        operation,
      );
    } catch (error) {
      // failMode 'local': while the store fails, checks count against this instance's share in
      // the fallback store, so an adjustment applies there too (a penalty or block of an abuser
      // holds during the outage, a refund gives back what a fallback check took). Other modes
      // have no local state to adjust: the caller learns that the store failed.
      if (this.failMode !== 'local' || this.#closed) throw error;
      outcome = this.#fallbackStore.adjust(storeKey, rule.fallbackLimits, adjustment, this.#block);
      source = 'fallback';
    }
    // A remembered refusal may no longer hold; a new block is remembered at once.
    if (operation === 'block') this.#localBlocks?.remember(storeKey, outcome, this.#clock.now());
    else if (operation !== 'peek') this.#localBlocks?.delete(storeKey);
    if (operation !== 'peek') this.#waiters.wake(storeKey);
    return this.#result(key, outcome, source, false);
  }

  /**
   * Forgets the counters and any block of `key` (for `role`'s limits). Resolves whether the key had
   * state (in the store, or in the local fallback's share during an outage), as
   * rate-limiter-flexible's `delete(key)`: false for a key never seen or already expired, and for
   * a custom store whose `reset` resolves nothing. On a remote store it waits at most `deadlineMs`
   * and goes through the breaker, as {@link refund} does: it rejects with `TimeoutError` (or the
   * open breaker's error), and a reset that reaches Redis after its deadline deletes nothing.
   */
  async reset(key: string, role?: string): Promise<boolean> {
    validateCheckInput({ key, role }, 'reset');
    const rule = role === undefined ? undefined : this.#roles.get(role);
    const namespace = (rule === undefined || rule === 'unlimited' ? this.#defaultRule : rule).namespace;
    this.#localBlocks?.delete(namespace + key);
    const inFallback = await this.#fallbackStore.reset(namespace + key);
    // A remote store's reset runs under the checks' deadline and breaker, as an adjustment does:
    // it is called on a request's path (a login that succeeded forgets the failed attempts).
    // The interface declares `reset(key)` (MemoryStore's second parameter is a namespace, and a
    // custom store written before ignores more arguments); a remote store may read the options.
    const store = this.store as RateLimitStore & {
      reset(key: string, options?: ConsumeOptions): ReturnType<RateLimitStore['reset']>;
    };
    const inStore =
      this.#memoryStore !== undefined
        ? await this.#memoryStore.reset(key, namespace)
        : await this.#remote!.adjust((options) => store.reset(namespace + key, options), 'reset');
    // Callers waiting in acquire() for this key need not sleep out its old refusal.
    this.#waiters.wake(namespace + key);
    return inStore === true || inFallback;
  }

  /**
   * Forgets the counters and blocks of every key of this limiter: the keys of its rules (the
   * default limits and each role's, under its `prefix`) in the store, and what it keeps locally
   * (the hot-key cache of refusals, the local fallback's counters). As express-rate-limit stores'
   * `resetAll` and rate-limiter-flexible's `deleteInMemoryBlockedAll`. Another limiter's keys on a
   * shared store stay (another `prefix`, or other limits), but not those of a limiter with the
   * same prefix and limits: they share one quota. On Redis it scans for the keys (every master of
   * a Cluster) and deletes them in batches; not atomic, so a check made meanwhile may count in a
   * key already deleted. Rejects with `UnsupportedOperationError` for a store without `resetAll`,
   * and with the store's error when it fails.
   */
  async resetAll(): Promise<void> {
    if (this.#closed) throw new ClosedError('RateLimiter');
    const rules = this.#rules();
    const store = this.store;
    if (this.#memoryStore === undefined && store.resetAll === undefined)
      throw new UnsupportedOperationError('resetAll', `the ${store.kind} store has no resetAll() method`);
    // The namespaces of each rule's earlier limits too, as the store recorded them; only those
    // of the rule itself (a record is the store's, and must not widen what is deleted).
    const namespaces = new Set(rules.map((rule) => rule.namespace));
    const recorded =
      this.#memoryStore !== undefined
        ? rules.map((rule) => this.#memoryStore!.recordedNamespacesSync(rule.base))
        : store.recordedNamespaces === undefined
          ? []
          : await Promise.all(rules.map((rule) => store.recordedNamespaces!(rule.base)));
    for (let index = 0; index < recorded.length; index += 1)
      for (const namespace of recorded[index]!)
        if (isNamespaceOf(rules[index]!.base, namespace)) namespaces.add(namespace);
    if (this.#memoryStore !== undefined) this.#memoryStore.resetAllSync([...namespaces]);
    else await store.resetAll!([...namespaces]);
    // After the store: a refusal remembered while it was being cleared no longer holds either.
    this.#localBlocks?.clear();
    this.#fallbackStore.resetAllSync();
    // Callers waiting in acquire() need not sleep out refusals that no longer hold.
    this.#waiters.wakeAll();
  }

  /**
   * Stops accepting checks, rejects the callers waiting in {@link acquire} with `ClosedError` (one
   * whose timeout had already passed by the clock, with its `timeout`);
   * closes the store only when the limiter created it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#releaseClaims();
    // Its counts go to the registry now; later ones (a late answer) go there one by one.
    this.#metrics.release();
    clearInterval(this.#recordTimer);
    // From now on: the keys written until now live that long (a remote store's last refresh,
    // less than an interval ago, covers them already).
    if (this.#memoryStore !== undefined && this.#recordTimer !== undefined) this.#record();
    await Promise.all(this.#recording);
    this.#waiters.close();
    this.#remote?.close();
    this.#localBlocks?.clear();
    await this.#fallbackStore.close();
    if (this.#ownsStore) await this.store.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #finish(
    key: string,
    storeKey: string,
    cost: number,
    outcome: ConsumeOutcome,
    source: DecisionSource,
  ): RateLimitResult {
    // A fail-mode answer for a key whose refusal is known here: the refusal still holds.
    const known = this.#localBlocks?.settle(storeKey, outcome, source === 'store', this.#clock.now(), cost);
    if (known !== undefined) return this.#result(key, known, 'local-cache');
    return this.#result(key, outcome, source);
  }

  /**
   * The result of `outcome`; `record` false (adjustments) leaves the check metric and channel
   * alone; `beyond`: a cost above a limit's capacity (see {@link #beyondCapacity}).
   */
  #result(
    key: string,
    outcome: ConsumeOutcome,
    source: QuotaResult['source'],
    record?: boolean,
    beyond?: boolean,
  ): QuotaResult;
  #result(
    key: string,
    outcome: ConsumeOutcome,
    source: DecisionSource,
    record?: boolean,
    beyond?: boolean,
  ): RateLimitResult;
  #result(
    key: string,
    outcome: ConsumeOutcome,
    source: DecisionSource,
    record = true,
    beyond = false,
  ): RateLimitResult {
    if (source === 'fail-mode') return this.#failModeResult(key, outcome, record, beyond);
    const limits: LimitStatus[] = outcome.decisions;
    let allowed = outcome.blockedMs === 0;
    let remaining = Number.POSITIVE_INFINITY;
    let resetMs = 0;
    let retryAfterMs = 0;
    let delayMs = 0;
    for (let index = 0; index < limits.length; index += 1) {
      const decision = limits[index]!;
      if (!decision.allowed) allowed = false;
      if (
        decision.remaining < remaining ||
        (decision.remaining === remaining && decision.resetMs > resetMs)
      ) {
        remaining = decision.remaining;
        resetMs = decision.resetMs;
      }
      if (decision.retryAfterMs > retryAfterMs) retryAfterMs = decision.retryAfterMs;
      if (decision.delayMs > delayMs) delayMs = decision.delayMs;
    }
    if (outcome.blockedMs > retryAfterMs) retryAfterMs = outcome.blockedMs;
    // Only the fallback's share of the limits can say never for a cost within them.
    if (retryAfterMs === Number.POSITIVE_INFINITY && !beyond) retryAfterMs = fallbackShareRetryMs;
    const result: QuotaResult = {
      allowed,
      outcome: beyond
        ? 'exceeds-capacity'
        : allowed
          ? 'allowed'
          : outcome.blockedMs > 0
            ? 'blocked'
            : 'limited',
      key,
      limits,
      remaining: remaining === Number.POSITIVE_INFINITY ? 0 : remaining,
      resetMs,
      retryAfterMs: allowed ? 0 : retryAfterMs,
      delayMs: allowed ? delayMs : 0,
      source,
    };
    if (beyond) withNeverRetryJSON(result);
    else if (result.outcome === 'blocked') result.blockedMs = outcome.blockedMs;
    if (!record) return result;
    // Labels are built only when metrics are on: the hot path allocates nothing for them.
    if (this.#metricsEnabled) this.#metrics.checks.inc(result.outcome, source);
    if (checkChannel.hasSubscribers) this.#publish(result);
    return result;
  }

  /**
   * {@link #result} of a fail mode's answer (`'open'`, `'closed'`): `outcome`'s decisions stand in
   * for a quota nobody counted, so only whether it admits, and a closed refusal's retry advice, are
   * kept (see {@link FailModeResult}).
   */
  #failModeResult(key: string, outcome: ConsumeOutcome, record: boolean, beyond: boolean): FailModeResult {
    const allowed = !beyond && admitted(outcome);
    // Only the limits that say never (set by beyondCapacity() from the policy) are known.
    const limits = beyond
      ? outcome.decisions
          .filter((decision) => decision.retryAfterMs === Number.POSITIVE_INFINITY)
          .map((decision) => withNeverRetryJSON({ ...decision, remaining: 0, resetMs: 0, nextMs: 0 }))
      : [];
    let retryAfterMs = 0;
    if (beyond) retryAfterMs = Number.POSITIVE_INFINITY;
    else if (!allowed)
      for (const decision of outcome.decisions)
        if (decision.retryAfterMs > retryAfterMs) retryAfterMs = decision.retryAfterMs;
    const result: FailModeResult = {
      allowed,
      outcome: beyond ? 'exceeds-capacity' : allowed ? 'allowed' : 'limited',
      key,
      limits,
      remaining: undefined,
      resetMs: undefined,
      retryAfterMs,
      delayMs: 0,
      source: 'fail-mode',
    };
    if (beyond) withNeverRetryJSON(result);
    if (!record) return result;
    if (this.#metricsEnabled) this.#metrics.checks.inc(result.outcome, 'fail-mode');
    if (checkChannel.hasSubscribers) this.#publish(result);
    return result;
  }

  /** {@link #result} of a store decision on a single limit, without the loop and the outcome. */
  #singleResult(key: string, decision: Decision): RateLimitResult {
    const allowed = decision.allowed;
    const result: QuotaResult = {
      allowed,
      outcome: allowed ? 'allowed' : 'limited',
      key,
      limits: [decision],
      remaining: decision.remaining,
      resetMs: decision.resetMs,
      retryAfterMs: allowed ? 0 : decision.retryAfterMs,
      delayMs: allowed ? decision.delayMs : 0,
      source: 'store',
    };
    // Out of line, so that this method stays small enough for V8 to inline into check().
    if (this.#metricsEnabled || checkChannel.hasSubscribers) this.#observe(result);
    return result;
  }

  /**
   * {@link #singleResult} of a decision of {@link MemoryStore.consumeHot}, which only admits: the
   * same object (the same fields in the same order), with the refusal's branches left out.
   */
  #hotResult(key: string, decision: Decision): RateLimitResult {
    const result: QuotaResult = {
      allowed: true,
      outcome: 'allowed',
      key,
      limits: [decision],
      remaining: decision.remaining,
      resetMs: decision.resetMs,
      retryAfterMs: 0,
      delayMs: 0,
      source: 'store',
    };
    // `=== true`: a plain test of the field would be V8's generic truth test, ~15 instructions.
    if (this.#metricsEnabled === true || checkChannel.hasSubscribers) this.#observe(result);
    return result;
  }

  /**
   * Publishes `result` on the check channel with this limiter's name (a copy: see
   * `CheckChannelMessage`). Callers test `checkChannel.hasSubscribers` first, so a check
   * nobody traces builds no message.
   */
  #publish(result: RateLimitResult): void {
    checkChannel.publish(checkChannelMessage(result, this.#name));
  }

  /** Counts `result` (when metrics are on) and publishes it (when the check channel has subscribers). */
  #observe(result: RateLimitResult): void {
    if (this.#metricsEnabled) this.#metrics.checks.inc(result.outcome, result.source);
    if (checkChannel.hasSubscribers) this.#publish(result);
  }

  #listed(key: string, outcome: CheckOutcome, record = true): QuotaResult {
    const allowed = outcome !== 'denied';
    if (record && this.#metricsEnabled) this.#metrics.checks.inc(outcome, 'lists');
    const result: QuotaResult = {
      allowed,
      outcome,
      key,
      limits: [],
      remaining: 0,
      resetMs: 0,
      retryAfterMs: 0,
      delayMs: 0,
      source: 'lists',
    };
    // Tracers see denied and allow-listed clients too: a deny list hit is what an audit looks for.
    if (record && checkChannel.hasSubscribers) this.#publish(result);
    return result;
  }
}

/**
 * `outcome` (a cost-0 check of the key, or the local block cache's remembered refusal of another
 * cost) as the refusal of `cost`: the limits it is above refuse it with `retryAfterMs` Infinity;
 * the others report the key's state as a cost-0 check finds it (admitted unless blocked). A
 * blocked key has no quota until its block ends, whatever its windows hold: its limits say so
 * (the headers of a `blocked` answer say the same, from its retry time, which this one lacks).
 */
function beyondCapacity(
  outcome: ConsumeOutcome,
  limits: readonly LimitPolicy[],
  cost: number,
): ConsumeOutcome {
  const { blockedMs } = outcome;
  return {
    blockedMs,
    decisions: outcome.decisions.map((found, index) => {
      const decision =
        blockedMs > 0
          ? {
              ...found,
              remaining: 0,
              resetMs: blockedResetMs(found.remaining, found.resetMs, blockedMs),
              nextMs: blockedResetMs(found.remaining, found.nextMs, blockedMs),
            }
          : found;
      if (cost > maxCostOf(limits[index]!))
        return withNeverRetryJSON({
          ...decision,
          allowed: false,
          retryAfterMs: Number.POSITIVE_INFINITY,
          delayMs: 0,
        });
      // As a cost-0 check finds it, whichever outcome came (the local block cache's remembered
      // refusal of another cost too): it admits nothing more, but refuses only while blocked.
      return { ...decision, allowed: blockedMs === 0, retryAfterMs: blockedMs, delayMs: 0 };
    }),
  };
}

/**
 * Whether `namespace`, as a store recorded it for the rule `base`, is one of that rule's:
 * `<base>:<fingerprint>:`, the fingerprint without a `:`.
 */
function isNamespaceOf(base: string, namespace: string): boolean {
  return (
    namespace.length > base.length + 2 &&
    namespace.startsWith(`${base}:`) &&
    namespace.endsWith(':') &&
    !namespace.slice(base.length + 1, -1).includes(':')
  );
}

/** Each instance's share of the limits when the shared store is unreachable. */
function divideLimits(limits: LimitPolicy[], instances: number): LimitPolicy[] {
  if (instances === 1) return limits;
  return limits.map((policy) => ({
    ...policy,
    limit: Math.max(1, Math.floor(policy.limit / instances)),
    burst: policy.burst === undefined ? undefined : Math.max(1, Math.floor(policy.burst / instances)),
  }));
}

/** Creates a {@link RateLimiter}. */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return new RateLimiter(options);
}
