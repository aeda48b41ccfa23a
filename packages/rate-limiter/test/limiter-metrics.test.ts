import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ManualClock } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AcquireError, createRateLimiter } from '../src/index.js';
import { FlakyStore } from './flaky-store.js';

// Each counter and histogram of the limiter counts with the labels its README row names: the
// values a check, an adjustment, a failed store call or an acquire() records.

/** The sample lines of `metric` (its name, labels and value), as the registry exposes them. */
async function samples(registry: Registry, metric: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((line) => line.startsWith(`${metric}{`) || line.startsWith(`${metric} `));
}

describe('noa_rate_limiter_checks_total counts each check by result and source', () => {
  it('store (allowed, limited, blocked, exceeds_capacity) and lists (denied, allowlisted, unlimited)', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      name: 'm',
      limits: [{ limit: 1, windowMs: 60_000 }],
      autoBlock: { violations: 2, withinMs: 60_000, blockMs: 600_000 },
      roles: { admin: 'unlimited' },
      allow: ['10.0.0.1'],
      deny: ['10.0.0.2'],
      clock: new ManualClock(1_700_000_000_000),
      registry,
    });
    await limiter.check('a'); // allowed
    await limiter.check('a'); // limited: a violation
    await limiter.check('a'); // the second violation: blocked
    await limiter.check('a'); // blocked
    await limiter.check({ key: 'b', cost: 2 }); // exceeds capacity
    await limiter.check({ key: 'c', ip: '10.0.0.2' });
    await limiter.check({ key: 'c', ip: '10.0.0.1' });
    await limiter.check({ key: 'c', role: 'admin' });
    await limiter.check({ key: 'c', role: 'admin' });
    expect((await samples(registry, 'noa_rate_limiter_checks_total')).sort()).toEqual(
      [
        'noa_rate_limiter_checks_total{limiter="m",result="allowed",source="store"} 1',
        'noa_rate_limiter_checks_total{limiter="m",result="limited",source="store"} 1',
        'noa_rate_limiter_checks_total{limiter="m",result="blocked",source="store"} 2',
        'noa_rate_limiter_checks_total{limiter="m",result="exceeds_capacity",source="store"} 1',
        'noa_rate_limiter_checks_total{limiter="m",result="denied",source="lists"} 1',
        'noa_rate_limiter_checks_total{limiter="m",result="allowlisted",source="lists"} 1',
        'noa_rate_limiter_checks_total{limiter="m",result="unlimited",source="lists"} 2',
      ].sort(),
    );
    await limiter.close();
  });

  it('checkSync() counts as check() does', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], registry });
    limiter.checkSync('a');
    limiter.checkSync('a');
    expect((await samples(registry, 'noa_rate_limiter_checks_total')).sort()).toEqual([
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 1',
      'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="store"} 1',
    ]);
    await limiter.close();
  });

  it('a remote store: store, local_cache, then fallback while it fails', async () => {
    const registry = new Registry();
    const store = new FlakyStore();
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 1, windowMs: 60_000 }],
      registry,
      breaker: { consecutiveFailures: 100 },
    });
    await limiter.check('a');
    await limiter.check('a'); // the store refuses, and the refusal is remembered
    await limiter.check('a'); // refused locally
    store.down = true;
    await limiter.check('b');
    expect((await samples(registry, 'noa_rate_limiter_checks_total')).sort()).toEqual(
      [
        'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 1',
        'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="store"} 1',
        'noa_rate_limiter_checks_total{limiter="limiter",result="limited",source="local_cache"} 1',
        'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="fallback"} 1',
      ].sort(),
    );
    await limiter.close();
  });
});

describe('the checks a limiter counts reach the registry when it is read', () => {
  it('each read shows every check once, a read between checks included, and close() keeps them', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], registry });
    const allowed = async () =>
      (await registry.getSingleMetric('noa_rate_limiter_checks_total')!.get()).values.find(
        (value) => value.labels.result === 'allowed',
      )?.value;
    for (let index = 0; index < 3; index += 1) await limiter.check('a');
    expect(await allowed()).toBe(3);
    expect(await allowed()).toBe(3);
    limiter.checkSync('a');
    expect(await samples(registry, 'noa_rate_limiter_checks_total')).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 4',
    );
    await limiter.check('a');
    await limiter.close();
    expect(await allowed()).toBe(5);
    // Another limiter of the name adds to the same series, before and after the first closed.
    const again = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], registry });
    await again.check('a');
    expect(await allowed()).toBe(6);
    await again.close();
    expect(await allowed()).toBe(6);
  });
});

describe('checks_total and registry.resetMetrics()', () => {
  it('a reset drops the checks counted before it, read or not', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], registry });
    await limiter.check('a');
    await limiter.check('a');
    // Counted, not yet read: a reset must not bring them back at the next read.
    registry.resetMetrics();
    await limiter.check('a');
    expect(await samples(registry, 'noa_rate_limiter_checks_total')).toEqual([
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 1',
    ]);
    await limiter.close();
  });
});

describe('limiters dropped without close()', () => {
  it('leave nothing behind on the registry but their series (heap after GC)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Collected for good: the limiters' last promises settled, weak references cleared.
    const settle = async () => {
      for (let round = 0; round < 3; round += 1) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        gc();
      }
    };
    const registry = new Registry();
    const make = async (count: number) => {
      for (let index = 0; index < count; index += 1) {
        const limiter = createRateLimiter({ limits: [{ limit: 100, windowMs: 60_000 }], registry });
        await limiter.check('a');
      }
    };
    // The first ones make the series and warm the code.
    await make(200);
    await settle();
    const before = process.memoryUsage().heapUsed;
    await make(5_000);
    await settle();
    const grown = process.memoryUsage().heapUsed - before;
    // Kept per limiter (its counts, its children of checks_total), this grew by about 37 MB (0.2 MB without).
    expect(grown).toBeLessThan(4 * 1024 * 1024);
    expect(await samples(registry, 'noa_rate_limiter_checks_total')).toEqual([
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 5200',
    ]);
  }, 60_000);
});

describe('store errors and call durations', () => {
  it('store_errors_total by kind (error, circuit_open) and check_duration_seconds by store and result', async () => {
    const registry = new Registry();
    const store = new FlakyStore();
    const limiter = createRateLimiter({
      store,
      limits: [{ limit: 5, windowMs: 60_000 }],
      registry,
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 600_000 },
    });
    await limiter.check('a');
    await limiter.check('a');
    store.down = true;
    await limiter.check('b');
    await limiter.check('b'); // the breaker opens
    await limiter.check('b'); // skipped by the open breaker: not timed
    expect((await samples(registry, 'noa_rate_limiter_store_errors_total')).sort()).toEqual([
      'noa_rate_limiter_store_errors_total{limiter="limiter",kind="circuit_open"} 1',
      'noa_rate_limiter_store_errors_total{limiter="limiter",kind="error"} 2',
    ]);
    const counts = (await samples(registry, 'noa_rate_limiter_check_duration_seconds_count')).sort();
    expect(counts).toEqual([
      'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="flaky",result="error"} 2',
      'noa_rate_limiter_check_duration_seconds_count{limiter="limiter",store="flaky",result="ok"} 2',
    ]);
    await limiter.close();
  });
});

describe('noa_rate_limiter_adjustments_total counts by operation', () => {
  it('peek, refund, penalize, block and unblock', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 5, windowMs: 60_000 }], registry });
    await limiter.peek('a');
    await limiter.refund('a');
    await limiter.refund('a', 2);
    await limiter.penalize('a', 2);
    await limiter.block('a', 60_000);
    await limiter.unblock('a');
    expect((await samples(registry, 'noa_rate_limiter_adjustments_total')).sort()).toEqual([
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="block"} 1',
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="peek"} 1',
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="penalize"} 1',
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="refund"} 2',
      'noa_rate_limiter_adjustments_total{limiter="limiter",operation="unblock"} 1',
    ]);
    await limiter.close();
  });
});

describe('noa_rate_limiter_acquire_wait_seconds counts by result', () => {
  it('acquired, limited, denied, exceeds_capacity, aborted', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs: 60_000 }],
      deny: ['10.0.0.2'],
      registry,
    });
    await limiter.acquire('a');
    await expect(limiter.acquire('a', { timeoutMs: 10 })).rejects.toBeInstanceOf(AcquireError);
    await expect(limiter.acquire({ key: 'b', ip: '10.0.0.2' })).rejects.toBeInstanceOf(AcquireError);
    await expect(limiter.acquire({ key: 'b', cost: 2 })).rejects.toBeInstanceOf(AcquireError);
    const controller = new AbortController();
    const waiting = limiter.acquire('a', { signal: controller.signal });
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(AcquireError);
    expect((await samples(registry, 'noa_rate_limiter_acquire_wait_seconds_count')).sort()).toEqual([
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="aborted"} 1',
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="acquired"} 1',
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="denied"} 1',
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="exceeds_capacity"} 1',
      'noa_rate_limiter_acquire_wait_seconds_count{limiter="limiter",result="limited"} 1',
    ]);
    await limiter.close();
  });
});
