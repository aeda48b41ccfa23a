import { ManualClock } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';
import { counterFactory } from './counter-factory.js';

// pg.Pool's maxLifetimeSeconds (brianc/node-postgres#2698) closes an idle client the moment it
// expires, and HikariCP never lends a connection past maxLifetime: an idle resource past
// maxLifetimeMs must not be lent in the time left before the next eviction run.
describe('Pool: maxLifetimeMs at borrow', () => {
  // No eviction run in the test's time: only the borrow itself can notice the age.
  const quiet = { evictionIntervalMs: 600_000, maxLifetimeMs: 1_000 };

  it('an idle resource past maxLifetimeMs is closed and a new one lent (fast path)', async () => {
    const clock = new ManualClock(0);
    const { factory, destroyed } = counterFactory({ validate: true });
    const pool = new Pool(factory, { ...quiet, max: 2, clock });
    pool.release(await pool.acquire());
    clock.advance(999);
    const young = await pool.acquire();
    expect(young.id).toBe(1);
    pool.release(young);
    clock.advance(1);
    const next = await pool.acquire();
    expect(next.id).toBe(2);
    expect(destroyed).toEqual([1]);
    expect(pool.stats).toMatchObject({ active: 1, idle: 0, size: 1 });
    pool.release(next);
    await pool.close();
  });

  it('the same with validateOnBorrow (the caller queues while the idle one is checked)', async () => {
    const clock = new ManualClock(0);
    const { factory, destroyed } = counterFactory({ validate: true });
    const pool = new Pool(factory, { ...quiet, max: 2, clock, validateOnBorrow: true });
    const [first, second] = await Promise.all([pool.acquire(), pool.acquire()]);
    pool.release(first!);
    clock.advance(1_000);
    const served = await pool.acquire();
    expect(served.id).toBe(3);
    expect(destroyed).toEqual([1]);
    pool.release(served);
    pool.release(second!);
    await pool.close();
  });
});
