import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { DrainTimeoutError, Pool } from '../src/index.js';

const factory = { create: async () => ({}), destroy: async () => {} };

// How long a resource was held, as close(), drain() and leaks() report it, must be the time since
// its acquire even when neither leak detection nor metrics are on (they turn on precise timing):
// it was the time since 1970 (heldMs ≈ 1.8e12, logged as "connection never released before close").
describe('Pool: heldMs of resources never released, leak detection and metrics off', () => {
  it('close() and leaks() report the time since the acquire (injected clock)', async () => {
    const clock = new ManualClock(1_000_000);
    const pool = new Pool(factory, { max: 2, closeTimeoutMs: 1, clock });
    await pool.acquire();
    clock.advance(250);
    expect(pool.leaks().map((leak) => leak.heldMs)).toEqual([250]);
    const report = await pool.close();
    expect(report.unreleased.map((leak) => leak.heldMs)).toEqual([250]);
  });

  it('drain({ timeoutMs }) lists the same in DrainTimeoutError (system clock: a generous bound)', async () => {
    const pool = new Pool(factory, { max: 2 });
    await pool.acquire();
    const failure = await pool.drain({ timeoutMs: 1 }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(DrainTimeoutError);
    const [leak] = (failure as DrainTimeoutError).unreleased;
    expect(leak!.heldMs).toBeGreaterThanOrEqual(0);
    expect(leak!.heldMs).toBeLessThan(60_000);
  });
});
