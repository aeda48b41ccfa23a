import { afterEach, describe, expect, it, vi } from 'vitest';
import { Pool } from '../src/index.js';
import { counterFactory } from './counter-factory.js';

const HOUR = 3_600_000;

// Idle, lifetime and leak ages are durations: a wall clock stepped by NTP or a VM resume (Date.now()
// jumping an hour forward or back) must not make every idle connection look expired, every lent one
// look leaked, or an old connection look young (HikariCP and pg-pool time ages on a monotonic clock).
describe('Pool: ages on the default clock do not follow a wall-clock step', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a step forward neither expires an idle resource nor reports a lent one as leaked', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, {
      max: 2,
      maxLifetimeMs: 60_000,
      idleTimeoutMs: 60_000,
      leakDetectionThresholdMs: 60_000,
      evictionIntervalMs: 600_000,
    });
    const held = await pool.acquire();
    pool.release(await pool.acquire());
    vi.setSystemTime(Date.now() + HOUR);
    const again = await pool.acquire();
    expect(again.id).toBe(2);
    expect(destroyed).toEqual([]);
    expect(pool.leaks()).toEqual([]);
    pool.release(again);
    pool.release(held);
    await pool.close();
  });

  it('a step back does not make an old resource young', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { factory, destroyed } = counterFactory();
    const pool = new Pool(factory, { max: 1, maxLifetimeMs: 50, evictionIntervalMs: 600_000 });
    pool.release(await pool.acquire());
    vi.setSystemTime(Date.now() - HOUR);
    await new Promise((resolve) => setTimeout(resolve, 80));
    const next = await pool.acquire();
    expect(next.id).toBe(2);
    expect(destroyed).toEqual([1]);
    pool.release(next);
    await pool.close();
  });
});
