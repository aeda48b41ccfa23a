import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CacheEngine } from '../src/cache-engine.js';
import type { FactoryRun } from '../src/factory-runs.js';
import type { RedisTier } from '../src/l2/redis-tier.js';
import { ReplacedValueKeeper } from '../src/replaced-value-keeper.js';

/**
 * The keeper's timers (see long-run-extension.test.ts for what it does on Redis): no renewal is
 * armed once the cache closed. No server: the tier answers each extension when the test says.
 */
describe('ReplacedValueKeeper', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('arms no renewal once the cache closed during one', async () => {
    vi.useFakeTimers();
    const engine = { closed: false, options: { lock: { leaseMs: 1_000 }, operationTimeoutMs: 500 } };
    const answers: ((kept: boolean) => void)[] = [];
    const tier = {
      extendIfUnchanged: () =>
        new Promise<boolean>((resolve) => {
          answers.push(resolve);
        }),
    };
    const run: FactoryRun = { tags: [], kind: 'run', superseded: false, suspect: false };
    const keeper = new ReplacedValueKeeper(
      engine as unknown as CacheEngine,
      tier as unknown as RedisTier,
      undefined,
      [{ fullKey: 'k', held: Buffer.from('v'), tags: [], run }],
    );
    // The first extension answers: the first renewal is due in 1 s.
    answers.shift()!(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    // The renewal is in flight; the cache closes before it answers.
    expect(answers).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    engine.closed = true;
    answers.shift()!(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
    await keeper.stop();
  });

  it('stops renewing after 10 × max(lock.leaseMs, hardTimeoutMs) and warns once naming the key: the factory looks hung', async () => {
    vi.useFakeTimers();
    const warnings: [string, Record<string, unknown> | undefined][] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (message: string, fields?: Record<string, unknown>) => warnings.push([message, fields]),
      error: () => {},
    };
    const engine = { closed: false, logger, options: { lock: { leaseMs: 1_000 }, operationTimeoutMs: 500 } };
    const sent: number[] = [];
    const tier = {
      extendIfUnchanged: async (_key: string, _held: Buffer, ttlMs: number) => {
        sent.push(ttlMs);
        return true;
      },
    };
    const run: FactoryRun = { tags: [], kind: 'run', superseded: false, suspect: false };
    // A run that never settles: nothing calls stop().
    new ReplacedValueKeeper(engine as unknown as CacheEngine, tier as unknown as RedisTier, undefined, [
      { fullKey: 'hung-key', held: Buffer.from('v'), tags: [], run },
    ]);
    await vi.advanceTimersByTimeAsync(9_500);
    // The first extension, then one renewal per second while the run is trusted to be alive.
    expect(sent).toHaveLength(10);
    expect(warnings).toEqual([]);
    await vi.advanceTimersByTimeAsync(60_000);
    // Kept to 10 s + the last renewal's 1.5 s; then the value keeps its own expiry.
    expect(sent).toHaveLength(10);
    expect(vi.getTimerCount()).toBe(0);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]![0]).toMatch(/looks hung/);
    expect(warnings[0]![1]).toMatchObject({ keys: ['hung-key'], runningMs: 10_000 });
  });

  it('renews for 10 × the hard timeout when it is longer than the lease', async () => {
    vi.useFakeTimers();
    const engine = {
      closed: false,
      logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
      options: { lock: { leaseMs: 1_000 }, operationTimeoutMs: 500 },
    };
    let sent = 0;
    const tier = {
      extendIfUnchanged: async () => {
        sent += 1;
        return true;
      },
    };
    const run: FactoryRun = { tags: [], kind: 'run', superseded: false, suspect: false };
    new ReplacedValueKeeper(engine as unknown as CacheEngine, tier as unknown as RedisTier, 3_000, [
      { fullKey: 'k', held: Buffer.from('v'), tags: [], run },
    ]);
    await vi.advanceTimersByTimeAsync(29_000);
    // The first extension and a renewal every 3 s (at 3, 6, … 27 s).
    expect(sent).toBe(10);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sent).toBe(10);
    expect(vi.getTimerCount()).toBe(0);
  });
});
