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
});
