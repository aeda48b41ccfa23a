import { readFileSync } from 'node:fs';
import path from 'node:path';
import { breakerOptionsSchema, defaultConsecutiveFailures, ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import {
  acquireOptionsSchema,
  autoBlockSchema,
  type ConsumeOutcome,
  createRateLimiter,
  MemoryStore,
  type RateLimitStore,
  rateLimiterOptionsSchema,
} from '../src/index.js';

// README "Options": each default the table states is the one the options schema fills in, and
// "Failure modes": the default breaker opens as the README says it does.

const readme = readFileSync(path.resolve(import.meta.dirname, '../README.md'), 'utf8');

/** The `createRateLimiter` options table: option cell → default cell. */
function documentedDefaults(): Map<string, string> {
  const section = readme.slice(readme.indexOf('## Options'), readme.indexOf('## Errors'));
  const rows = section.split('\n').filter((line) => /^\| `[a-zA-Z]/.test(line));
  return new Map(
    rows.map((line) => {
      const cells = line.split(/(?<!\\)\|/).map((cell) => cell.trim());
      return [cells[1]!, cells[3]!];
    }),
  );
}

describe('README options table: the defaults are the schema defaults', () => {
  const parsed = rateLimiterOptionsSchema.parse({ limits: [{ limit: 1, windowMs: 1_000 }] });
  const defaults = documentedDefaults();

  it.each([
    ['`roles`', '`{}`', parsed.roles, {}],
    ['`prefix`', "`'rl'`", parsed.prefix, 'rl'],
    ['`allow` / `deny`', '`[]`', [parsed.allow, parsed.deny], [[], []]],
    ['`autoBlock`', 'off', parsed.autoBlock, undefined],
    ['`failMode`', "`'local'`", parsed.failMode, 'local'],
    ['`expectedInstances`', '1', parsed.expectedInstances, 1],
    ['`deadlineMs`', '25', parsed.deadlineMs, 25],
    [
      '`localBlockCache` / `localBlockMaxKeys`',
      'true / 10,000',
      [parsed.localBlockCache, parsed.localBlockMaxKeys],
      [true, 10_000],
    ],
    ['`batch`', 'true', parsed.batch, true],
    ['`name`', "`'limiter'`", parsed.name, 'limiter'],
    ['`logIntervalMs`', '10,000', parsed.logIntervalMs, 10_000],
    [
      '`registry`, `logger`, `clock`',
      'none, silent, system',
      [parsed.registry, parsed.logger, parsed.clock],
      [undefined, undefined, undefined],
    ],
  ])('%s: %s', (option, documented, actual, expected) => {
    expect(defaults.get(option)).toBe(documented);
    expect(actual).toEqual(expected);
  });

  it('`store`: new `MemoryStore`', async () => {
    expect(defaults.get('`store`')).toBe('new `MemoryStore`');
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }] });
    expect(limiter.store).toBeInstanceOf(MemoryStore);
    await limiter.close();
  });

  it('`breaker`: ratio 0.5 over 5 s, at least 5 calls a second, or 10 failed calls in a row, half-open after 1 s', () => {
    expect(defaults.get('`breaker`')).toBe(
      'ratio 0.5 over 5 s, at least 5 calls/s, or 10 failed calls in a row; half-open after 1 s',
    );
    expect(breakerOptionsSchema.parse({})).toEqual({
      failureRatio: 0.5,
      samplingDurationMs: 5_000,
      minimumRps: 5,
      halfOpenAfterMs: 1_000,
    });
    // Unset, the run is core's default (set, it replaces the ratio).
    expect(defaultConsecutiveFailures).toBe(10);
  });

  it('`limits`: 1 to 16', () => {
    expect(defaults.get('`limits`')).toBe('required');
    const limit = { limit: 1, windowMs: 1_000 };
    const withLimits = (count: number) => () =>
      createRateLimiter({
        limits: Array.from({ length: count }, (_, index) => ({ ...limit, name: `l${index}` })),
      });
    expect(withLimits(0)).toThrow(/limits/);
    expect(withLimits(17)).toThrow(/limits/);
    expect(withLimits(16)).not.toThrow();
  });
});

/** A remote store whose calls fail while `down` (answered at once either way). */
class SwitchStore implements RateLimitStore {
  readonly kind = 'switch';
  readonly remote = true;
  readonly #memory = new MemoryStore();
  down = false;
  consume(...args: Parameters<MemoryStore['consume']>): Promise<ConsumeOutcome[]> {
    if (this.down) return Promise.reject(new Error('connection refused'));
    return Promise.resolve(this.#memory.consume(...args));
  }
  async reset(key: string): Promise<boolean> {
    return this.#memory.reset(key);
  }
  async close(): Promise<void> {
    await this.#memory.close();
  }
}

describe('the default breaker (README "Failure modes")', () => {
  const breakerOf = (limiter: ReturnType<typeof createRateLimiter>) => limiter.health().details.breaker;

  it('opens after 10 failed calls in a row, though 100 succeeded before (the ratio is far below half)', async () => {
    const store = new SwitchStore();
    const limiter = createRateLimiter({ store, limits: [{ limit: 100, windowMs: 60_000 }], batch: false });
    for (let index = 0; index < 100; index += 1) await limiter.check(`ok${index}`);
    store.down = true;
    for (let index = 0; index < 9; index += 1) await limiter.check(`failed${index}`);
    expect(breakerOf(limiter)).toBe('closed');
    await limiter.check('failed9');
    expect(breakerOf(limiter)).toBe('open');
    await limiter.close();
  });

  it('the ratio stays closed below 25 calls in its 5 s window, though 2 of 3 fail (5 calls/s × 5 s)', async () => {
    const store = new SwitchStore();
    const limiter = createRateLimiter({ store, limits: [{ limit: 100, windowMs: 60_000 }], batch: false });
    // Two failed calls, then one answered: 16 of 24 failed, never more than 2 in a row.
    for (let index = 0; index < 24; index += 1) {
      store.down = index % 3 !== 2;
      await limiter.check(`k${index}`);
    }
    expect(breakerOf(limiter)).toBe('closed');
    store.down = true;
    await limiter.check('k24');
    expect(breakerOf(limiter)).toBe('open');
    await limiter.close();
  });

  it('opens when more than half of the window’s calls fail, with no run of 10: exactly half keeps it closed', async () => {
    const store = new SwitchStore();
    const limiter = createRateLimiter({ store, limits: [{ limit: 100, windowMs: 60_000 }], batch: false });
    for (let index = 0; index < 13; index += 1) {
      store.down = false;
      await limiter.check(`ok${index}`);
      store.down = true;
      await limiter.check(`failed${index}`);
    }
    // 13 of 26 failed: half, not more.
    expect(breakerOf(limiter)).toBe('closed');
    await limiter.check('failed13');
    expect(breakerOf(limiter)).toBe('open');
    await limiter.close();
  });
});

describe('the other defaults and bounds the README states', () => {
  it('autoBlock: multiplier 2, maxBlockMs and forgetAfterMs one day ("Keys, rules, lists and blocking")', () => {
    expect(autoBlockSchema.parse({ violations: 10, withinMs: 60_000, blockMs: 300_000 })).toMatchObject({
      multiplier: 2,
      maxBlockMs: 86_400_000,
      forgetAfterMs: 86_400_000,
    });
  });

  it('autoBlock: the tenth refusal within the minute already answers blocked, for 5 minutes, then 10', async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 1_000 }],
      autoBlock: { violations: 10, withinMs: 60_000, blockMs: 300_000, multiplier: 2 },
      clock,
    });
    await limiter.check('k');
    const outcomes = [];
    for (let index = 0; index < 10; index += 1) outcomes.push((await limiter.check('k')).outcome);
    expect(outcomes).toEqual([...Array(9).fill('limited'), 'blocked']);
    expect((await limiter.check('k')).retryAfterMs).toBe(300_000);
    clock.advance(300_000);
    await limiter.check('k');
    for (let index = 0; index < 9; index += 1) await limiter.check('k');
    const second = await limiter.check('k');
    expect(second.outcome).toBe('blocked');
    expect(second.retryAfterMs).toBe(600_000);
    await limiter.close();
  });

  it('acquire(): timeoutMs 10,000, maxQueue 1,000', () => {
    expect(acquireOptionsSchema.parse({})).toMatchObject({ timeoutMs: 10_000, maxQueue: 1_000 });
  });

  it('sliding-log: a limit of at most 10,000 entries per key', () => {
    const make = (limit: number) => () =>
      createRateLimiter({ limits: [{ algorithm: 'sliding-log', limit, windowMs: 60_000 }] });
    expect(make(10_001)).toThrow(/limits\.0\.limit/);
    expect(make(10_000)).not.toThrow();
  });

  it('MemoryStore: at most 100,000 keys by default (`new MemoryStore()` is `maxKeys: 100_000`)', () => {
    const store = new MemoryStore({ clock: new ManualClock(1_700_000_000_000) });
    const limits = [{ name: 'default', algorithm: 'fixed-window' as const, limit: 1, windowMs: 60_000 }];
    for (let index = 0; index < 100_500; index += 1) store.consume(`k${index}`, limits, [1], undefined);
    expect(store.size).toBe(100_000);
  });
});
