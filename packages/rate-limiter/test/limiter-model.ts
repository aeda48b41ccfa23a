import type { AutoBlockOptions, LimitInput, RateLimitResult } from '../src/index.js';

// A reference model of the limiter's public API, written from the README's stated semantics and
// not from src/: each algorithm is only "what is left at time t", "does a cost fit at t" and
// "take a cost at t"; every time a result reports (resetMs, nextMs, retryAfterMs) is then found by
// searching for the first millisecond at which the stated condition holds (the quota full again,
// more than `remaining` back, the request fitting), which holds because every algorithm only frees
// quota as time passes. Used by the model-based tests on the memory store (exact times, a manual
// clock) and on Redis (long windows, times within the uncertainty of Redis TIME).

/** A limit with its defaults filled in, as the model reads it. */
export interface ModelLimit {
  name: string;
  algorithm: 'fixed-window' | 'sliding-window' | 'sliding-log' | 'token-bucket' | 'leaky-bucket';
  limit: number;
  windowMs: number;
  burst: number;
  queueMaxDelayMs: number;
}

interface BlockModel {
  blockedUntil: number;
  offences: number;
  /** Violation counting: the anchor of the slots and the slot of the newest count (undefined: none). */
  anchor: number | undefined;
  newestSlot: number;
  /** Violations per slot index (relative to `anchor`). */
  counts: Map<number, number>;
}

interface KeyModel {
  states: unknown[];
  block: BlockModel | undefined;
  /** Whether the store holds anything of the key for sure (written since the last reset). */
  touched: boolean;
}

/** One limit's expected status (a `LimitStatus`). */
export interface ExpectedLimit {
  name: string;
  windowMs: number;
  allowed: boolean;
  limit: number;
  rate?: number;
  remaining: number;
  resetMs: number;
  nextMs: number;
  retryAfterMs: number;
  delayMs: number;
}

/** An expected `QuotaResult`. */
export interface ExpectedResult {
  allowed: boolean;
  outcome: RateLimitResult['outcome'];
  key: string;
  limits: ExpectedLimit[];
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
  delayMs: number;
  source: 'store' | 'lists' | 'local-cache';
  blockedMs?: number;
}

export interface ModelConfig {
  limits: LimitInput[];
  roles?: Record<string, LimitInput[] | 'unlimited'>;
  autoBlock?: AutoBlockOptions;
  allow?: string[];
  deny?: string[];
}

export interface ModelInput {
  key: string;
  cost?: number;
  role?: string;
  ip?: string;
}

const defaultName = (index: number) => (index === 0 ? 'default' : `limit-${index}`);

export function modelLimits(limits: readonly LimitInput[]): ModelLimit[] {
  return limits.map((limit, index) => ({
    name: limit.name ?? defaultName(index),
    algorithm: limit.algorithm ?? 'fixed-window',
    limit: limit.limit,
    windowMs: limit.windowMs,
    burst: limit.burst ?? limit.limit,
    queueMaxDelayMs: limit.queueMaxDelayMs ?? 0,
  }));
}

const isBucket = (limit: ModelLimit) =>
  limit.algorithm === 'token-bucket' || limit.algorithm === 'leaky-bucket';

/** What a limit holds when unused: `limit`, or `burst` for the buckets. */
export const capacity = (limit: ModelLimit) => (isBucket(limit) ? limit.burst : limit.limit);

/** The largest cost a limit ever admits: its capacity, plus what a queueing leaky bucket delays. */
export function maxCost(limit: ModelLimit): number {
  if (limit.algorithm !== 'leaky-bucket') return capacity(limit);
  return Math.floor((limit.burst * limit.windowMs + limit.queueMaxDelayMs * limit.limit) / limit.windowMs);
}

// ---------------------------------------------------------------------------------------------
// The algorithms: state, what is left at t, whether a cost fits at t, taking it, refund, penalty.

interface AlgorithmModel {
  /** Points available at `t` for an ordinary request (never negative). */
  remaining(state: unknown, t: number, limit: ModelLimit): number;
  fits(state: unknown, t: number, cost: number, limit: ModelLimit): boolean;
  take(state: unknown, t: number, cost: number, limit: ModelLimit): unknown;
  /** Queueing leaky bucket: how long an admitted request waits. */
  delay(state: unknown, t: number, cost: number, limit: ModelLimit): number;
  refund(state: unknown, t: number, points: number, limit: ModelLimit): unknown;
  penalize(state: unknown, t: number, points: number, limit: ModelLimit): unknown;
}

const windowStart = (t: number, w: number) => t - (t % w);

interface Fixed {
  start: number;
  count: number;
}
const fixedCount = (s: Fixed | undefined, t: number, w: number) =>
  s !== undefined && s.start === windowStart(t, w) ? s.count : 0;
const fixed: AlgorithmModel = {
  remaining: (s, t, l) => Math.max(0, l.limit - fixedCount(s as Fixed, t, l.windowMs)),
  fits: (s, t, c, l) => fixedCount(s as Fixed, t, l.windowMs) + c <= l.limit,
  take: (s, t, c, l) => ({
    start: windowStart(t, l.windowMs),
    count: fixedCount(s as Fixed, t, l.windowMs) + c,
  }),
  delay: () => 0,
  refund: (s, t, p, l) => {
    const state = s as Fixed | undefined;
    if (state === undefined || state.start !== windowStart(t, l.windowMs)) return state;
    return { start: state.start, count: Math.max(0, state.count - p) };
  },
  penalize: (s, t, p, l) => {
    const count = fixedCount(s as Fixed, t, l.windowMs);
    return { start: windowStart(t, l.windowMs), count: Math.max(count, Math.min(l.limit, count + p)) };
  },
};

interface Sliding {
  start: number;
  current: number;
  previous: number;
}
/** The aligned window's count and the one before it, as they stand at t. */
function slidingCounts(s: Sliding | undefined, t: number, w: number): { current: number; previous: number } {
  const start = windowStart(t, w);
  if (s === undefined) return { current: 0, previous: 0 };
  if (s.start === start) return { current: s.current, previous: s.previous };
  if (s.start === start - w) return { current: 0, previous: s.current };
  return { current: 0, previous: 0 };
}
/** The previous window's weight at t, in points × windowMs: previous × (the share of it still in the sliding window). */
function previousWeight(s: Sliding | undefined, t: number, w: number): number {
  const { previous } = slidingCounts(s, t, w);
  return previous * (w - (t - windowStart(t, w)));
}
const sliding: AlgorithmModel = {
  remaining: (s, t, l) => {
    const { current } = slidingCounts(s as Sliding, t, l.windowMs);
    return Math.max(
      0,
      l.limit - current - Math.ceil(previousWeight(s as Sliding, t, l.windowMs) / l.windowMs),
    );
  },
  fits: (s, t, c, l) => {
    const { current } = slidingCounts(s as Sliding, t, l.windowMs);
    // previous × share + current + cost ≤ limit, scaled by windowMs (exact in integers).
    return previousWeight(s as Sliding, t, l.windowMs) + (current + c) * l.windowMs <= l.limit * l.windowMs;
  },
  take: (s, t, c, l) => {
    const { current, previous } = slidingCounts(s as Sliding, t, l.windowMs);
    return { start: windowStart(t, l.windowMs), current: current + c, previous };
  },
  delay: () => 0,
  refund: (s, t, p, l) => {
    const state = s as Sliding | undefined;
    if (state === undefined || state.start !== windowStart(t, l.windowMs)) return state;
    return { ...state, current: Math.max(0, state.current - p) };
  },
  penalize: (s, t, p, l) => {
    const { current, previous } = slidingCounts(s as Sliding, t, l.windowMs);
    const ceiling = l.limit - Math.ceil(previousWeight(s as Sliding, t, l.windowMs) / l.windowMs);
    return {
      start: windowStart(t, l.windowMs),
      previous,
      current: Math.max(current, Math.min(current + p, ceiling)),
    };
  },
};

type Log = { time: number; cost: number }[];
const inWindow = (s: Log | undefined, t: number, w: number): Log => (s ?? []).filter((e) => e.time > t - w);
const used = (log: Log) => log.reduce((sum, e) => sum + e.cost, 0);
const slidingLog: AlgorithmModel = {
  remaining: (s, t, l) => Math.max(0, l.limit - used(inWindow(s as Log, t, l.windowMs))),
  fits: (s, t, c, l) => used(inWindow(s as Log, t, l.windowMs)) + c <= l.limit,
  // A cost of 0 logs nothing.
  take: (s, t, c, l) => (c === 0 ? s : [...inWindow(s as Log, t, l.windowMs), { time: t, cost: c }]),
  delay: () => 0,
  refund: (s, t, p, l) => {
    if (s === undefined) return s;
    const log = inWindow(s as Log, t, l.windowMs).map((e) => ({ ...e }));
    let left = p;
    while (left > 0 && log.length > 0) {
      const newest = log[log.length - 1]!;
      if (newest.cost <= left) {
        left -= newest.cost;
        log.pop();
      } else {
        newest.cost -= left;
        left = 0;
      }
    }
    return log;
  },
  penalize: (s, t, p, l) => {
    const log = inWindow(s as Log, t, l.windowMs);
    const added = Math.min(p, l.limit - used(log));
    return added > 0 ? [...log, { time: t, cost: added }] : log;
  },
};

/** Buckets keep points × windowMs: a token bucket's tokens, a leaky bucket's level. */
interface Bucket {
  units: number;
  at: number;
}
const tokensAt = (s: Bucket | undefined, t: number, l: ModelLimit) =>
  s === undefined
    ? l.burst * l.windowMs
    : Math.min(l.burst * l.windowMs, s.units + Math.max(0, t - s.at) * l.limit);
const tokenBucket: AlgorithmModel = {
  remaining: (s, t, l) => Math.floor(tokensAt(s as Bucket, t, l) / l.windowMs),
  fits: (s, t, c, l) => c * l.windowMs <= tokensAt(s as Bucket, t, l),
  take: (s, t, c, l) => ({ units: tokensAt(s as Bucket, t, l) - c * l.windowMs, at: t }),
  delay: () => 0,
  refund: (s, t, p, l) =>
    s === undefined
      ? s
      : { units: Math.min(l.burst * l.windowMs, tokensAt(s as Bucket, t, l) + p * l.windowMs), at: t },
  penalize: (s, t, p, l) => ({ units: Math.max(0, tokensAt(s as Bucket, t, l) - p * l.windowMs), at: t }),
};

const levelAt = (s: Bucket | undefined, t: number, l: ModelLimit) =>
  s === undefined ? 0 : Math.max(0, s.units - Math.max(0, t - s.at) * l.limit);
const leakyBucket: AlgorithmModel = {
  remaining: (s, t, l) =>
    Math.max(0, Math.floor((l.burst * l.windowMs - levelAt(s as Bucket, t, l)) / l.windowMs)),
  fits: (s, t, c, l) =>
    levelAt(s as Bucket, t, l) + c * l.windowMs <= l.burst * l.windowMs + l.queueMaxDelayMs * l.limit,
  take: (s, t, c, l) => ({ units: levelAt(s as Bucket, t, l) + c * l.windowMs, at: t }),
  delay: (s, t, c, l) => {
    const over = levelAt(s as Bucket, t, l) + c * l.windowMs - l.burst * l.windowMs;
    return c > 0 && over > 0 ? Math.ceil(over / l.limit) : 0;
  },
  refund: (s, t, p, l) =>
    s === undefined ? s : { units: Math.max(0, levelAt(s as Bucket, t, l) - p * l.windowMs), at: t },
  penalize: (s, t, p, l) => {
    const level = levelAt(s as Bucket, t, l);
    return { units: Math.max(level, Math.min(l.burst * l.windowMs, level + p * l.windowMs)), at: t };
  },
};

const algorithmModels: Record<ModelLimit['algorithm'], AlgorithmModel> = {
  'fixed-window': fixed,
  'sliding-window': sliding,
  'sliding-log': slidingLog,
  'token-bucket': tokenBucket,
  'leaky-bucket': leakyBucket,
};

/**
 * The first t ≥ now at which `holds(t)` (monotone: once true, true for ever after, as no request
 * comes meanwhile), as a delay from now. Every condition searched holds within two windows plus a
 * full bucket's refill and a full queue's leak.
 */
function firstTime(now: number, limit: ModelLimit, holds: (t: number) => boolean): number {
  if (holds(now)) return 0;
  let low = now; // does not hold
  let high =
    now +
    2 * limit.windowMs +
    Math.ceil((limit.burst * limit.windowMs) / limit.limit) +
    limit.queueMaxDelayMs +
    2;
  if (!holds(high)) throw new Error(`model: condition never holds for ${JSON.stringify(limit)}`);
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (holds(middle)) high = middle;
    else low = middle;
  }
  return high - now;
}

/** The decision of `limit` for `cost` at `now` on `state`, and the state after it (when admitted). */
function decide(
  state: unknown,
  now: number,
  cost: number,
  limit: ModelLimit,
): { decision: ExpectedLimit; state: unknown } {
  const model = algorithmModels[limit.algorithm];
  const allowed = model.fits(state, now, cost, limit);
  const after = allowed ? model.take(state, now, cost, limit) : state;
  const remaining = model.remaining(after, now, limit);
  const full = capacity(limit);
  const decision: ExpectedLimit = {
    name: limit.name,
    windowMs: limit.windowMs,
    allowed,
    limit: full,
    ...(isBucket(limit) ? { rate: limit.limit } : {}),
    remaining,
    // Until the quota is whole again.
    resetMs: firstTime(now, limit, (t) => model.remaining(after, t, limit) >= full),
    // Until more than `remaining` is back (0 when nothing more can come).
    nextMs:
      remaining >= full ? 0 : firstTime(now, limit, (t) => model.remaining(after, t, limit) > remaining),
    retryAfterMs: allowed
      ? 0
      : cost > maxCost(limit)
        ? Number.POSITIVE_INFINITY
        : firstTime(now, limit, (t) => model.fits(state, t, cost, limit)),
    delayMs: allowed ? model.delay(state, now, cost, limit) : 0,
  };
  return { decision, state: after };
}

// ---------------------------------------------------------------------------------------------
// Auto-block: refusals counted per quarter of `withinMs` (rounded up), over the current quarter and
// the four before it; at `violations`, a block of blockMs × multiplier^(offences − 1), at most
// maxBlockMs; an offender with no block for forgetAfterMs starts again from blockMs.

interface BlockPolicy {
  violations: number;
  withinMs: number;
  blockMs: number;
  multiplier: number;
  maxBlockMs: number;
  forgetAfterMs: number;
}

function blockPolicy(options: AutoBlockOptions | undefined): BlockPolicy | undefined {
  if (options === undefined) return undefined;
  return {
    multiplier: 2,
    maxBlockMs: 86_400_000,
    forgetAfterMs: 86_400_000,
    ...options,
  } as BlockPolicy;
}

const emptyBlock = (): BlockModel => ({
  blockedUntil: 0,
  offences: 0,
  anchor: undefined,
  newestSlot: 0,
  counts: new Map(),
});

/** Records a refusal at `now`; true when it starts a block. */
function recordViolation(block: BlockModel, now: number, policy: BlockPolicy): boolean {
  const slotMs = Math.ceil(policy.withinMs / 4);
  const slotOf = (t: number) => Math.floor((t - block.anchor!) / slotMs);
  // Nothing counted within the five slots that reach now: the count starts again, from now.
  if (block.anchor === undefined || slotOf(now) - block.newestSlot >= 5) {
    block.anchor = now;
    block.newestSlot = 0;
    block.counts = new Map();
  }
  const slot = slotOf(now);
  block.counts.set(slot, (block.counts.get(slot) ?? 0) + 1);
  block.newestSlot = slot;
  let counted = 0;
  for (const [index, count] of block.counts) if (index >= slot - 4) counted += count;
  if (counted < policy.violations) return false;
  const forgotten = now - block.blockedUntil >= policy.forgetAfterMs;
  block.offences = (forgotten ? 0 : block.offences) + 1;
  block.blockedUntil =
    now + Math.min(policy.maxBlockMs, Math.round(policy.blockMs * policy.multiplier ** (block.offences - 1)));
  // A block starts the count afresh, from its start.
  block.anchor = now;
  block.newestSlot = 0;
  block.counts = new Map();
  return true;
}

// ---------------------------------------------------------------------------------------------

interface Rule {
  id: string;
  limits: ModelLimit[];
}

/** IPv4 only, as the tests use: an address or a CIDR range. */
function ipv4Matches(entries: readonly string[], ip: string): boolean {
  const toNumber = (address: string) =>
    address.split('.').reduce((value, part) => value * 256 + Number(part), 0);
  return entries.some((entry) => {
    const [address, bits] = entry.split('/');
    const prefix = bits === undefined ? 32 : Number(bits);
    const size = 2 ** (32 - prefix);
    return Math.floor(toNumber(address!) / size) === Math.floor(toNumber(ip) / size);
  });
}

/** The limiter as the README describes it. Time is given by the caller at each call. */
export class LimiterModel {
  readonly #default: Rule;
  readonly #roles = new Map<string, Rule | 'unlimited'>();
  readonly #block: BlockPolicy | undefined;
  readonly #allow: string[];
  readonly #deny: string[];
  #keys = new Map<string, KeyModel>();

  constructor(config: ModelConfig) {
    this.#default = { id: 'default', limits: modelLimits(config.limits) };
    for (const [role, rule] of Object.entries(config.roles ?? {}))
      this.#roles.set(
        role,
        rule === 'unlimited' ? 'unlimited' : { id: `role-${role}`, limits: modelLimits(rule) },
      );
    this.#block = blockPolicy(config.autoBlock);
    this.#allow = config.allow ?? [];
    this.#deny = config.deny ?? [];
  }

  /** The rule of a role (undefined: the default one), or 'unlimited'. */
  rule(role: string | undefined): Rule | 'unlimited' {
    return (role === undefined ? undefined : this.#roles.get(role)) ?? this.#default;
  }

  /** The largest cost every limit of the role's rule admits. */
  maxCostOf(role: string | undefined): number {
    const rule = this.rule(role);
    return rule === 'unlimited' ? Number.POSITIVE_INFINITY : Math.min(...rule.limits.map(maxCost));
  }

  #keyModel(rule: Rule, key: string): KeyModel {
    const id = `${rule.id}\u0000${key}`;
    let model = this.#keys.get(id);
    if (model === undefined) {
      model = { states: rule.limits.map(() => undefined), block: undefined, touched: false };
      this.#keys.set(id, model);
    }
    return model;
  }

  #listed(key: string, outcome: 'denied' | 'allowlisted' | 'unlimited'): ExpectedResult {
    return {
      allowed: outcome !== 'denied',
      outcome,
      key,
      limits: [],
      remaining: 0,
      resetMs: 0,
      retryAfterMs: 0,
      delayMs: 0,
      source: 'lists',
    };
  }

  /** What the lists and roles answer before any counting, if they do. */
  #lists(input: ModelInput, withIp: boolean): ExpectedResult | undefined {
    if (withIp && input.ip !== undefined) {
      if (ipv4Matches(this.#deny, input.ip)) return this.#listed(input.key, 'denied');
      if (ipv4Matches(this.#allow, input.ip)) return this.#listed(input.key, 'allowlisted');
    }
    if (this.rule(input.role) === 'unlimited') return this.#listed(input.key, 'unlimited');
    return undefined;
  }

  /** `limiter.check(input)` at `now`: the expected result; the model counts it as the limiter must. */
  check(input: ModelInput, now: number): ExpectedResult {
    const listed = this.#lists(input, true);
    if (listed !== undefined) return listed;
    const rule = this.rule(input.role) as Rule;
    const cost = input.cost ?? 1;
    const keyModel = this.#keyModel(rule, input.key);
    if (cost > this.maxCostOf(input.role)) return this.#beyondCapacity(rule, keyModel, input.key, cost, now);
    const blockedMs = Math.max(0, (keyModel.block?.blockedUntil ?? 0) - now);
    const steps = rule.limits.map((limit, index) => decide(keyModel.states[index], now, cost, limit));
    const admitted = blockedMs === 0 && steps.every((step) => step.decision.allowed);
    if (admitted) {
      keyModel.states = steps.map((step) => step.state);
      if (cost > 0) keyModel.touched = true;
      return this.#compose(
        input.key,
        steps.map((step) => step.decision),
        0,
        'admitted',
      );
    }
    // Refused: counted in none; a limit that would admit reports its unspent state.
    const decisions = steps.map((step, index) =>
      step.decision.allowed
        ? decide(keyModel.states[index], now, 0, rule.limits[index]!).decision
        : step.decision,
    );
    if (blockedMs > 0) return this.#compose(input.key, decisions, blockedMs, 'blocked');
    if (this.#block !== undefined) {
      keyModel.block ??= emptyBlock();
      keyModel.touched = true;
      if (recordViolation(keyModel.block, now, this.#block))
        return this.#compose(input.key, decisions, keyModel.block.blockedUntil - now, 'blocked');
    }
    return this.#compose(input.key, decisions, 0, 'refused');
  }

  /** A cost above a limit's capacity: refused for ever, nothing counted, the key's state shown. */
  #beyondCapacity(rule: Rule, keyModel: KeyModel, key: string, cost: number, now: number): ExpectedResult {
    const blockedMs = Math.max(0, (keyModel.block?.blockedUntil ?? 0) - now);
    const decisions = rule.limits.map((limit, index) => {
      const found = decide(keyModel.states[index], now, 0, limit).decision;
      const shown =
        blockedMs > 0
          ? {
              ...found,
              allowed: false,
              remaining: 0,
              resetMs: found.remaining > 0 ? blockedMs : Math.max(found.resetMs, blockedMs),
              nextMs: found.remaining > 0 ? blockedMs : Math.max(found.nextMs, blockedMs),
              retryAfterMs: Math.max(found.retryAfterMs, blockedMs),
            }
          : found;
      return cost > maxCost(limit)
        ? { ...shown, allowed: false, retryAfterMs: Number.POSITIVE_INFINITY, delayMs: 0 }
        : shown;
    });
    const result = this.#compose(key, decisions, 0, 'refused');
    return { ...result, outcome: 'exceeds-capacity', allowed: false, retryAfterMs: Number.POSITIVE_INFINITY };
  }

  /** The result of a rule's decisions (README: remaining is the smallest, resetMs that limit's). */
  #compose(
    key: string,
    decisions: ExpectedLimit[],
    blockedMs: number,
    how: 'admitted' | 'refused' | 'blocked',
  ): ExpectedResult {
    if (how === 'blocked')
      decisions = decisions.map((decision) => ({
        ...decision,
        allowed: false,
        retryAfterMs: Math.max(decision.retryAfterMs, blockedMs),
      }));
    let remaining = Number.POSITIVE_INFINITY;
    let resetMs = 0;
    for (const decision of decisions)
      if (
        decision.remaining < remaining ||
        (decision.remaining === remaining && decision.resetMs > resetMs)
      ) {
        remaining = decision.remaining;
        resetMs = decision.resetMs;
      }
    const allowed = how === 'admitted';
    const retryAfterMs = allowed
      ? 0
      : Math.max(blockedMs, ...decisions.map((decision) => decision.retryAfterMs));
    return {
      allowed,
      outcome: allowed ? 'allowed' : how === 'blocked' ? 'blocked' : 'limited',
      key,
      limits: decisions,
      remaining,
      resetMs,
      retryAfterMs,
      delayMs: allowed ? Math.max(0, ...decisions.map((decision) => decision.delayMs)) : 0,
      source: 'store',
      ...(how === 'blocked' ? { blockedMs } : {}),
    };
  }

  /** What a cost-0 check reports, counting nothing (peek, and the answer of every adjustment). */
  #state(rule: Rule, keyModel: KeyModel, key: string, now: number): ExpectedResult {
    const blockedMs = Math.max(0, (keyModel.block?.blockedUntil ?? 0) - now);
    const decisions = rule.limits.map(
      (limit, index) => decide(keyModel.states[index], now, 0, limit).decision,
    );
    return this.#compose(key, decisions, blockedMs, blockedMs > 0 ? 'blocked' : 'admitted');
  }

  peek(input: ModelInput, now: number): ExpectedResult {
    const listed = this.#lists(input, true);
    if (listed !== undefined) return listed;
    const rule = this.rule(input.role) as Rule;
    return this.#state(rule, this.#keyModel(rule, input.key), input.key, now);
  }

  /** refund / penalize: each limit's adjustment, then the key's state. */
  adjust(input: ModelInput, operation: 'refund' | 'penalize', points: number, now: number): ExpectedResult {
    const listed = this.#lists(input, false);
    if (listed !== undefined) return listed;
    const rule = this.rule(input.role) as Rule;
    const keyModel = this.#keyModel(rule, input.key);
    keyModel.states = rule.limits.map((limit, index) =>
      algorithmModels[limit.algorithm][operation](keyModel.states[index], now, points, limit),
    );
    if (operation === 'penalize' && points > 0) keyModel.touched = true;
    return this.#state(rule, keyModel, input.key, now);
  }

  block(input: ModelInput, durationMs: number, now: number): ExpectedResult {
    const listed = this.#lists(input, false);
    if (listed !== undefined) return listed;
    const rule = this.rule(input.role) as Rule;
    const keyModel = this.#keyModel(rule, input.key);
    // Not an offence: the violations and offences stay; only the block's end is set.
    keyModel.block ??= emptyBlock();
    // Offences already forgotten (no block for forgetAfterMs) stay forgotten: the manual block's
    // end must not revive them.
    if (this.#block !== undefined && now - keyModel.block.blockedUntil >= this.#block.forgetAfterMs)
      keyModel.block.offences = 0;
    keyModel.block.blockedUntil = now + durationMs;
    keyModel.touched = true;
    return this.#state(rule, keyModel, input.key, now);
  }

  unblock(input: ModelInput, now: number): ExpectedResult {
    const listed = this.#lists(input, false);
    if (listed !== undefined) return listed;
    const rule = this.rule(input.role) as Rule;
    const keyModel = this.#keyModel(rule, input.key);
    if (keyModel.block !== undefined) {
      if (this.#block === undefined) keyModel.block = undefined;
      else {
        // The block ends now and recent violations go; the offences stay.
        keyModel.block.blockedUntil = Math.min(keyModel.block.blockedUntil, now);
        keyModel.block.counts = new Map();
      }
    }
    return this.#state(rule, keyModel, input.key, now);
  }

  /**
   * `reset(key, role)`: forgets the key. Returns what it must resolve: true when the key surely had
   * state (counted, blocked), false when it surely had none, undefined when either may be right (a
   * state the store may already have dropped as expired).
   */
  reset(key: string, role: string | undefined, now: number): boolean | undefined {
    const found = this.rule(role);
    const rule = found === 'unlimited' ? this.#default : found;
    const id = `${rule.id}\u0000${key}`;
    const keyModel = this.#keys.get(id);
    this.#keys.delete(id);
    // Never asked about since the last reset: nothing to forget.
    if (keyModel === undefined) return false;
    const live =
      (keyModel.block?.blockedUntil ?? 0) > now ||
      rule.limits.some((limit, index) => {
        const model = algorithmModels[limit.algorithm];
        return model.remaining(keyModel.states[index], now, limit) < capacity(limit);
      });
    return live && keyModel.touched ? true : undefined;
  }

  resetAll(): void {
    this.#keys = new Map();
  }
}

// ---------------------------------------------------------------------------------------------
// Headers, as the README's "Headers" section states them (draft-10 fields and the legacy ones
// with delta seconds).

const seconds = (ms: number) => Math.ceil(ms / 1_000);

function policyMember(limit: ExpectedLimit): string {
  const rate = limit.rate ?? limit.limit;
  if (limit.limit < rate)
    // A burst below the rate is all the bucket holds: q is the burst, over its refill time.
    return `"${limit.name}";q=${limit.limit};w=${seconds(Math.ceil((limit.limit * limit.windowMs) / rate))}`;
  const burst = limit.limit > rate ? `;noa-burst=${limit.limit}` : '';
  return `"${limit.name}";q=${rate};w=${seconds(limit.windowMs)}${burst}`;
}

/** `t` of a blocked key: no quota until the refusal's retry time, or the limit's own point if later. */
const blockedUntilMs = (remaining: number, untilMs: number, retryAfterMs: number) =>
  remaining > 0 ? retryAfterMs : Math.max(untilMs, retryAfterMs);

/** The headers the middleware sends for `result` (draft-10, plus the legacy ones in delta seconds). */
export function expectedHeaders(result: ExpectedResult): Record<string, string> {
  const headers: Record<string, string> = {};
  const blocked = result.outcome === 'blocked';
  if (result.limits.length > 0) {
    headers['RateLimit-Policy'] = result.limits.map(policyMember).join(', ');
    headers.RateLimit = result.limits
      .map((limit) =>
        blocked
          ? `"${limit.name}";r=0;t=${seconds(blockedUntilMs(limit.remaining, limit.nextMs, result.retryAfterMs))}`
          : `"${limit.name}";r=${limit.remaining};t=${seconds(limit.nextMs)}`,
      )
      .join(', ');
    const tightest =
      result.limits.find(
        (limit) => limit.remaining === result.remaining && limit.resetMs === result.resetMs,
      ) ?? result.limits[0]!;
    headers['X-RateLimit-Limit'] = String(tightest.limit);
    headers['X-RateLimit-Remaining'] = String(blocked ? 0 : result.remaining);
    headers['X-RateLimit-Reset'] = String(
      seconds(
        blocked ? blockedUntilMs(result.remaining, result.resetMs, result.retryAfterMs) : result.resetMs,
      ),
    );
  }
  if (!result.allowed && result.retryAfterMs > 0 && Number.isFinite(result.retryAfterMs))
    headers['Retry-After'] = String(seconds(result.retryAfterMs));
  return headers;
}

/** The options of `rateLimitHeaders` whose fields {@link expectedHeaders} gives. */
export const modelHeaderOptions = { legacy: true, legacyReset: 'delta-seconds' } as const;
