import fc from 'fast-check';
import { expect } from 'vitest';
import {
  AcquireError,
  CostExceedsCapacityError,
  type LimitInput,
  RateLimitedError,
  type RateLimiter,
  type RateLimitResult,
  rateLimitHeaders,
} from '../src/index.js';
import {
  type ExpectedResult,
  expectedHeaders,
  type LimiterModel,
  type ModelConfig,
  type ModelInput,
  modelHeaderOptions,
} from './limiter-model.js';

// The commands of the model-based tests (limiter-model.test.ts on the memory store,
// integration/limiter-model.test.ts on Redis): each runs one public call on the limiter and on
// the model, and compares the result and the headers a middleware would send.

/** What a command runs against. */
export interface Real {
  limiter: RateLimiter;
  /** The store's time of the call: [earliest, latest] (equal on a manual clock). */
  timeOf<T>(call: () => Promise<T> | T): Promise<{ value: T; from: number; to: number }>;
  /** Moves the manual clock (memory store only). */
  advance?(ms: number): void;
  /** Calls made in the run, for the report of a failure. */
  log: string[];
  /** Whether the store is synchronous (checkSync works). */
  sync: boolean;
  /**
   * acquire()'s timeout: on a manual clock, 1 ms (a refusal it could wait out times out, as the
   * clock does not move); on Redis, long (every refusal there lasts hours: it rejects at once).
   */
  acquireTimeoutMs: number;
  /**
   * The same calls on a second limiter (memory, its clock set to the store's time at each call),
   * whose answers must agree with the first one's (see `agree`).
   */
  twin?: { limiter: RateLimiter; setTime(ms: number): void };
}

export interface ModelState {
  model: LimiterModel;
}

/** The fields a `QuotaResult` has, for comparison. */
function comparable(result: RateLimitResult): ExpectedResult {
  const picked: ExpectedResult = {
    allowed: result.allowed,
    outcome: result.outcome,
    key: result.key,
    limits: result.limits.map((limit) => ({
      name: limit.name,
      windowMs: limit.windowMs,
      allowed: limit.allowed,
      limit: limit.limit,
      ...(limit.rate === undefined ? {} : { rate: limit.rate }),
      remaining: limit.remaining,
      resetMs: limit.resetMs,
      nextMs: limit.nextMs,
      retryAfterMs: limit.retryAfterMs,
      delayMs: limit.delayMs,
    })),
    remaining: result.remaining as number,
    resetMs: result.resetMs as number,
    retryAfterMs: result.retryAfterMs,
    delayMs: result.delayMs,
    source: result.source as ExpectedResult['source'],
  };
  if ('blockedMs' in result && result.blockedMs !== undefined) picked.blockedMs = result.blockedMs;
  return picked;
}

const timeFields = ['resetMs', 'nextMs', 'retryAfterMs', 'delayMs', 'blockedMs'] as const;

/**
 * `actual` as `expected`, its times within `slackMs` (0: exact; on Redis the model cannot know the
 * store's millisecond). With slack, the expected times are replaced by the actual ones once they
 * are within it, so that the rest (and the headers) compare exactly.
 */
function within(actual: ExpectedResult, expected: ExpectedResult, slackMs: number): ExpectedResult {
  if (slackMs === 0) return { ...expected };
  const near = <T extends object>(got: T, want: T): T => {
    const out = { ...want } as Record<string, unknown>;
    for (const field of timeFields) {
      const a = (got as Record<string, unknown>)[field];
      const w = out[field];
      if (typeof a === 'number' && typeof w === 'number' && Number.isFinite(a) && Number.isFinite(w))
        if (Math.abs(a - w) <= slackMs) out[field] = a;
    }
    return out as T;
  };
  const result = near(actual, expected);
  result.limits = expected.limits.map((limit, index) =>
    actual.limits[index] === undefined ? limit : near(actual.limits[index]!, limit),
  );
  return result;
}

function compare(real: Real, actual: RateLimitResult, expected: ExpectedResult, slackMs: number): void {
  const got = comparable(actual);
  const want = within(got, expected, slackMs);
  // A remote store's refusals are remembered here and answered without a store call for up to a
  // second (README, "Hot keys"): the same answer, said by the local block cache.
  if (got.source === 'local-cache' && want.source === 'store' && !want.allowed) {
    want.source = 'local-cache';
  }
  expect(got, real.log.join('\n')).toEqual(want);
  expect(rateLimitHeaders(actual, modelHeaderOptions), `headers\n${real.log.join('\n')}`).toEqual(
    expectedHeaders(want),
  );
}

/** The model's answer at the store's time of the call (the earliest one, within `to - from`). */
async function run(
  real: Real,
  label: string,
  call: (limiter: RateLimiter) => Promise<RateLimitResult> | RateLimitResult,
  expect: (now: number) => ExpectedResult,
  model: ModelState,
): Promise<void> {
  real.log.push(label);
  const { value, from, to } = await real.timeOf(() => call(real.limiter));
  const expected = expect(from);
  compare(real, value, expected, to - from);
  if (real.twin !== undefined) {
    real.twin.setTime(from);
    compare(real, await call(real.twin.limiter), expected, to - from);
  }
  void model;
}

const show = (input: ModelInput) => JSON.stringify(input);

class CheckCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly input: ModelInput,
    readonly via: 'check' | 'cost-argument' | 'checkSync' | 'consume',
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: ModelState, real: Real): Promise<void> {
    const via = this.via === 'checkSync' && !real.sync ? 'check' : this.via;
    const { cost, ...rest } = this.input;
    const call = (limiter: RateLimiter): Promise<RateLimitResult> | RateLimitResult => {
      if (via === 'checkSync') return limiter.checkSync(this.input);
      if (via === 'cost-argument') return limiter.check(rest, cost);
      if (via === 'check') return limiter.check(this.input);
      return limiter.consume(this.input).then(
        (result) => result,
        (error: unknown) => {
          // consume() rejects a refusal with its whole result (RateLimitedError), and a cost no
          // limit admits with CostExceedsCapacityError, which carries no result.
          if (error instanceof RateLimitedError) return error.result as RateLimitResult;
          if (error instanceof CostExceedsCapacityError) return { costExceedsCapacity: error } as never;
          throw error;
        },
      );
    };
    real.log.push(`${via} ${show(this.input)}`);
    const { value, from, to } = await real.timeOf(() => call(real.limiter));
    const expected = model.model.check(this.input, from);
    if ((value as { costExceedsCapacity?: CostExceedsCapacityError }).costExceedsCapacity !== undefined) {
      const error = (value as unknown as { costExceedsCapacity: CostExceedsCapacityError })
        .costExceedsCapacity;
      expect(expected.outcome, real.log.join('\n')).toBe('exceeds-capacity');
      expect(error.cost).toBe(this.input.cost ?? 1);
      expect(error.limits).toEqual(
        expected.limits
          .filter((limit) => limit.retryAfterMs === Number.POSITIVE_INFINITY)
          .map((limit) => limit.name),
      );
    } else {
      compare(real, value, expected, to - from);
    }
    if (real.twin !== undefined) {
      real.twin.setTime(from);
      const twin = await call(real.twin.limiter);
      if ((twin as { costExceedsCapacity?: unknown }).costExceedsCapacity === undefined)
        compare(real, twin, expected, to - from);
    }
  }
  toString(): string {
    return `${this.via}(${show(this.input)})`;
  }
}

/**
 * `count` checks of one input made at once (`Promise.all`): a remote store merges a key's checks
 * of one tick into one call (README, `batch`), which must decide them as the same checks one
 * after another, in the order they were made.
 */
class BurstCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly input: ModelInput,
    readonly count: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: ModelState, real: Real): Promise<void> {
    real.log.push(`burst ${this.count} × ${show(this.input)}`);
    const { value, from, to } = await real.timeOf(() =>
      Promise.all(Array.from({ length: this.count }, () => real.limiter.check(this.input))),
    );
    const expected = value.map(() => model.model.check(this.input, from));
    for (const [index, result] of value.entries()) compare(real, result, expected[index]!, to - from);
    if (real.twin !== undefined) {
      real.twin.setTime(from);
      for (const want of expected) compare(real, await real.twin.limiter.check(this.input), want, to - from);
    }
  }
  toString(): string {
    return `burst(${show(this.input)}, ${this.count})`;
  }
}

class PeekCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(readonly input: ModelInput) {}
  check(): boolean {
    return true;
  }
  run(model: ModelState, real: Real): Promise<void> {
    return run(
      real,
      `peek ${show(this.input)}`,
      (l) => l.peek(this.input),
      (now) => model.model.peek(this.input, now),
      model,
    );
  }
  toString(): string {
    return `peek(${show(this.input)})`;
  }
}

class AdjustCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly input: ModelInput,
    readonly operation: 'refund' | 'penalize',
    readonly points: number,
  ) {}
  check(): boolean {
    return true;
  }
  run(model: ModelState, real: Real): Promise<void> {
    return run(
      real,
      `${this.operation} ${show(this.input)} ${this.points}`,
      (l) => l[this.operation](this.input, this.points),
      (now) => model.model.adjust(this.input, this.operation, this.points, now),
      model,
    );
  }
  toString(): string {
    return `${this.operation}(${show(this.input)}, ${this.points})`;
  }
}

class BlockCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly input: ModelInput,
    readonly durationMs: number | undefined,
  ) {}
  check(): boolean {
    return true;
  }
  run(model: ModelState, real: Real): Promise<void> {
    const durationMs = this.durationMs;
    if (durationMs === undefined)
      return run(
        real,
        `unblock ${show(this.input)}`,
        (l) => l.unblock(this.input),
        (now) => model.model.unblock(this.input, now),
        model,
      );
    return run(
      real,
      `block ${show(this.input)} ${durationMs}`,
      (l) => l.block(this.input, durationMs),
      (now) => model.model.block(this.input, durationMs, now),
      model,
    );
  }
  toString(): string {
    return this.durationMs === undefined
      ? `unblock(${show(this.input)})`
      : `block(${show(this.input)}, ${this.durationMs})`;
  }
}

class ResetCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(
    readonly key: string,
    readonly role: string | undefined,
  ) {}
  check(): boolean {
    return true;
  }
  async run(model: ModelState, real: Real): Promise<void> {
    real.log.push(`reset ${this.key} ${this.role}`);
    const { value, from } = await real.timeOf(() => real.limiter.reset(this.key, this.role));
    const expected = model.model.reset(this.key, this.role, from);
    if (expected !== undefined) expect(value, real.log.join('\n')).toBe(expected);
    if (real.twin !== undefined) {
      real.twin.setTime(from);
      const twin = await real.twin.limiter.reset(this.key, this.role);
      if (expected !== undefined) expect(twin, real.log.join('\n')).toBe(expected);
    }
  }
  toString(): string {
    return `reset(${this.key}, ${this.role})`;
  }
}

class ResetAllCommand implements fc.AsyncCommand<ModelState, Real> {
  check(): boolean {
    return true;
  }
  async run(model: ModelState, real: Real): Promise<void> {
    real.log.push('resetAll');
    await real.limiter.resetAll();
    await real.twin?.limiter.resetAll();
    model.model.resetAll();
  }
  toString(): string {
    return 'resetAll()';
  }
}

class AdvanceCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(readonly ms: number) {}
  check(_model: Readonly<ModelState>): boolean {
    return true;
  }
  async run(_model: ModelState, real: Real): Promise<void> {
    real.log.push(`advance ${this.ms}`);
    real.advance?.(this.ms);
  }
  toString(): string {
    return `advance(${this.ms})`;
  }
}

/**
 * `acquire(input, { timeoutMs: 1 })`: admitted now, it resolves with the check's result; refused,
 * it rejects (the clock does not move while it waits): at once with the refusal's outcome when
 * its retry time is beyond the timeout, as `timeout` otherwise; deny-listed and beyond-capacity
 * inputs are rejected without a check.
 */
class AcquireCommand implements fc.AsyncCommand<ModelState, Real> {
  constructor(readonly input: ModelInput) {}
  check(): boolean {
    return true;
  }
  async run(model: ModelState, real: Real): Promise<void> {
    real.log.push(`acquire ${show(this.input)}`);
    const { value, from, to } = await real.timeOf(() =>
      real.limiter.acquire(this.input, { timeoutMs: real.acquireTimeoutMs }).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
    );
    const cost = this.input.cost ?? 1;
    // The lists and unlimited roles answer first (an allow-listed caller of any cost is admitted).
    const listed = model.model.peek(
      { key: this.input.key, ip: this.input.ip, role: this.input.role },
      from,
    ).source;
    const denied = model.model.peek({ key: this.input.key, ip: this.input.ip }, from).outcome === 'denied';
    if (denied || (listed !== 'lists' && cost > model.model.maxCostOf(this.input.role))) {
      expect((value as { error?: AcquireError }).error, real.log.join('\n')).toBeInstanceOf(AcquireError);
      expect((value as { error: AcquireError }).error.reason).toBe(denied ? 'denied' : 'exceeds-capacity');
      return;
    }
    const expected = model.model.check(this.input, from);
    if (expected.allowed && expected.delayMs > real.acquireTimeoutMs) {
      // README: an admission whose delay would end after the timeout is refused at once
      // ('limited', retryAfterMs the delay) and its slot given back.
      const error = (value as { error?: AcquireError }).error;
      expect(error, real.log.join('\n')).toBeInstanceOf(AcquireError);
      expect([error!.reason, error!.retryAfterMs], real.log.join('\n')).toEqual([
        'limited',
        expected.delayMs,
      ]);
      model.model.adjust(this.input, 'refund', cost, from);
      if (real.twin !== undefined) {
        real.twin.setTime(from);
        await real.twin.limiter.check(this.input);
        await real.twin.limiter.refund(this.input, cost);
      }
      return;
    }
    if (expected.allowed) {
      expect((value as { error?: unknown }).error, real.log.join('\n')).toBeUndefined();
      compare(real, (value as { result: RateLimitResult }).result, expected, to - from);
    } else {
      const error = (value as { error?: AcquireError }).error;
      expect(error, real.log.join('\n')).toBeInstanceOf(AcquireError);
      expect(error!.reason, real.log.join('\n')).toBe(
        expected.retryAfterMs > real.acquireTimeoutMs ? expected.outcome : 'timeout',
      );
    }
    // The twin checks the same request, as acquire() did.
    if (real.twin !== undefined) {
      real.twin.setTime(from);
      await real.twin.limiter.check(this.input);
    }
  }
  toString(): string {
    return `acquire(${show(this.input)})`;
  }
}

export interface CommandSpace {
  keys: string[];
  roles: (string | undefined)[];
  ips: (string | undefined)[];
  maxCost: number;
  maxPoints: number;
  blockMs: fc.Arbitrary<number>;
  /** Moves of the clock (none on Redis, whose time cannot be moved). */
  advanceMs?: fc.Arbitrary<number>;
  acquire: boolean;
  resetAll: boolean;
}

/** Every public call of the limiter as a command, over the given keys, roles and addresses. */
export function commandsOf(space: CommandSpace): fc.Arbitrary<Iterable<fc.AsyncCommand<ModelState, Real>>> {
  const input = fc.record(
    {
      key: fc.constantFrom(...space.keys),
      role: fc.constantFrom(...space.roles),
      ip: fc.constantFrom(...space.ips),
      cost: fc.oneof(
        { weight: 4, arbitrary: fc.constant(1) },
        { weight: 2, arbitrary: fc.integer({ min: 0, max: space.maxCost }) },
      ),
    },
    { requiredKeys: ['key'] },
  ) as fc.Arbitrary<ModelInput>;
  const keyed = fc.record(
    { key: fc.constantFrom(...space.keys), role: fc.constantFrom(...space.roles) },
    { requiredKeys: ['key'] },
  ) as fc.Arbitrary<ModelInput>;
  const commands: fc.Arbitrary<fc.AsyncCommand<ModelState, Real>>[] = [
    fc
      .tuple(
        input,
        fc.constantFrom('check', 'cost-argument', 'checkSync', 'consume') as fc.Arbitrary<
          CheckCommand['via']
        >,
      )
      .map(([given, via]) => new CheckCommand(given, via)),
    fc
      .tuple(input, fc.constantFrom('check', 'checkSync') as fc.Arbitrary<CheckCommand['via']>)
      .map(([given, via]) => new CheckCommand(given, via)),
    input.map((given) => new PeekCommand({ key: given.key, role: given.role, ip: given.ip })),
    fc.tuple(input, fc.integer({ min: 2, max: 5 })).map(([given, count]) => new BurstCommand(given, count)),
    fc
      .tuple(
        keyed,
        fc.constantFrom('refund', 'penalize') as fc.Arbitrary<'refund' | 'penalize'>,
        fc.integer({ min: 0, max: space.maxPoints }),
      )
      .map(([given, operation, points]) => new AdjustCommand(given, operation, points)),
    fc
      .tuple(keyed, fc.option(space.blockMs, { nil: undefined }))
      .map(([given, ms]) => new BlockCommand(given, ms)),
    fc
      .tuple(fc.constantFrom(...space.keys), fc.constantFrom(...space.roles))
      .map(([key, role]) => new ResetCommand(key, role)),
  ];
  const weighted = commands.map((arbitrary) => ({ weight: 3, arbitrary }));
  // resetAll() SCANs the whole keyspace on Redis (a second on a shared server): rare there.
  if (space.resetAll) weighted.push({ weight: 1, arbitrary: fc.constant(new ResetAllCommand()) });
  if (space.acquire) weighted.push({ weight: 1, arbitrary: input.map((given) => new AcquireCommand(given)) });
  if (space.advanceMs !== undefined)
    weighted.push({ weight: 6, arbitrary: space.advanceMs.map((ms) => new AdvanceCommand(ms)) });
  return fc.commands([fc.oneof(...weighted)], { maxCommands: 60, size: 'max' });
}

/** A limit of one of the five algorithms, for a configuration arbitrary. */
export function limitArb(name: string, windowMs: fc.Arbitrary<number>): fc.Arbitrary<LimitInput> {
  return fc
    .record({
      algorithm: fc.constantFrom(
        'fixed-window',
        'sliding-window',
        'sliding-log',
        'token-bucket',
        'leaky-bucket',
      ) as fc.Arbitrary<NonNullable<LimitInput['algorithm']>>,
      limit: fc.integer({ min: 1, max: 5 }),
      windowMs,
      burst: fc.option(fc.integer({ min: 1, max: 7 }), { nil: undefined }),
      queueMaxDelayMs: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
    })
    .map(({ algorithm, limit, windowMs: window, burst, queueMaxDelayMs }) => {
      const bucket = algorithm === 'token-bucket' || algorithm === 'leaky-bucket';
      return {
        name,
        algorithm,
        limit,
        windowMs: window,
        ...(bucket && burst !== undefined ? { burst } : {}),
        ...(algorithm === 'leaky-bucket' && queueMaxDelayMs !== undefined ? { queueMaxDelayMs } : {}),
      };
    });
}

/** The configuration as the limiter takes it (the model takes the same). */
export type Config = ModelConfig;
