import { ManualClock } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { NotBorrowedError, Pool } from '../src/index.js';

interface Resource {
  id: number;
}

function resources() {
  let nextId = 0;
  const destroyed: number[] = [];
  return {
    destroyed,
    factory: {
      create: async (): Promise<Resource> => {
        nextId += 1;
        return { id: nextId };
      },
      destroy: async (resource: Resource) => {
        destroyed.push(resource.id);
      },
    },
  };
}

/** A reset the test settles by hand (a ROLLBACK still on the wire). */
function pendingReset() {
  let settle!: (ok: boolean) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (ok) => (ok ? resolve() : reject(new Error('ROLLBACK failed')));
  });
  const calls: Resource[] = [];
  return {
    calls,
    settle,
    reset: (resource: Resource) => {
      calls.push(resource);
      return done;
    },
  };
}

/** Lets every pending promise callback run. */
const settleCallbacks = () => new Promise((resolve) => setImmediate(resolve));

// release(resource, reset): the resource goes to no one before its reset (a give-back ROLLBACK)
// has settled, and is closed when the reset fails. The cluster's give-back relies on this.
describe('Pool#release with a reset', () => {
  it('a waiter gets the resource only once its reset resolved, and no second resource is opened for it', async () => {
    const { factory } = resources();
    const pool = new Pool(factory, { max: 2 });
    const first = await pool.acquire();
    const { calls, settle, reset } = pendingReset();
    pool.release(first, reset);
    expect(calls).toEqual([first]);
    expect(pool.stats).toMatchObject({ active: 0, idle: 0, size: 1 });
    let lent: Resource | undefined;
    const next = pool.acquire().then((resource) => {
      lent = resource;
      return resource;
    });
    await settleCallbacks();
    expect(lent).toBeUndefined(); // the reset has not settled
    expect(pool.stats).toMatchObject({ waiting: 1, pending: 0, size: 1 }); // waits for it, opens none
    settle(true);
    expect(await next).toBe(first);
    pool.release(first);
    await pool.close();
  });

  it('a resource whose reset rejects is closed and counted as errors_total{kind="reset"}; its waiter gets a new one', async () => {
    const { factory, destroyed } = resources();
    const registry = new Registry();
    const pool = new Pool(factory, { max: 1, registry, name: 'reset-fails' });
    const first = await pool.acquire();
    const { settle, reset } = pendingReset();
    pool.release(first, reset);
    const next = pool.acquire();
    settle(false);
    const second = await next;
    expect(second).not.toBe(first);
    expect(destroyed).toEqual([first.id]);
    const errors = await registry.getSingleMetric('noa_connection_pool_errors_total')!.get();
    expect(errors.values).toContainEqual(
      expect.objectContaining({ labels: { pool: 'reset-fails', kind: 'reset' }, value: 1 }),
    );
    pool.release(second);
    await pool.close();
  });

  it('a reset that throws instead of rejecting closes the resource all the same', async () => {
    const { factory, destroyed } = resources();
    const pool = new Pool(factory, { max: 1 });
    const first = await pool.acquire();
    pool.release(first, () => {
      throw new Error('not sent');
    });
    const second = await pool.acquire();
    expect(second).not.toBe(first);
    expect(destroyed).toEqual([first.id]);
    pool.release(second);
    await pool.close();
  });

  it('a resource given back twice while its reset runs: the second release throws NotBorrowedError and runs no reset', async () => {
    const { factory } = resources();
    const pool = new Pool(factory, { max: 1 });
    const first = await pool.acquire();
    const { calls, settle, reset } = pendingReset();
    pool.release(first, reset);
    expect(() => pool.release(first, reset)).toThrow(NotBorrowedError);
    expect(() => pool.destroy(first)).toThrow(NotBorrowedError);
    expect(calls).toHaveLength(1);
    settle(true);
    await settleCallbacks();
    expect(pool.stats).toMatchObject({ idle: 1, active: 0 });
    await pool.close();
  });

  it('a resource marked broken (invalidate) while its reset runs is closed afterwards, not reused', async () => {
    const { factory, destroyed } = resources();
    const pool = new Pool(factory, { max: 1 });
    const first = await pool.acquire();
    const { settle, reset } = pendingReset();
    pool.release(first, reset);
    pool.invalidate(first);
    settle(true);
    const second = await pool.acquire();
    expect(second).not.toBe(first);
    expect(destroyed).toEqual([first.id]);
    pool.release(second);
    await pool.close();
  });

  it('a resource given back past maxLifetimeMs is closed without running its reset', async () => {
    const { factory, destroyed } = resources();
    const clock = new ManualClock(1_000);
    const pool = new Pool(factory, { max: 1, maxLifetimeMs: 60_000, clock });
    const first = await pool.acquire();
    clock.advance(60_000);
    const { calls, reset } = pendingReset();
    pool.release(first, reset);
    expect(calls).toEqual([]);
    expect(destroyed).toEqual([first.id]);
    await pool.close();
  });

  it('drain() waits for a reset in progress; close() meanwhile closes the resource, and its late reset is ignored', async () => {
    const { factory, destroyed } = resources();
    const pool = new Pool(factory, { max: 1 });
    const first = await pool.acquire();
    const { settle, reset } = pendingReset();
    pool.release(first, reset);
    let drained = false;
    const drain = pool.drain().then(() => {
      drained = true;
    });
    await settleCallbacks();
    expect(drained).toBe(false);
    settle(true);
    await drain;
    expect(destroyed).toEqual([first.id]);

    const other = new Pool(resources().factory, { max: 1 });
    const held = await other.acquire();
    const late = pendingReset();
    other.release(held, late.reset);
    const report = await other.close();
    expect(report.unreleased).toEqual([]); // given back: not a leak
    late.settle(true);
    await settleCallbacks();
    expect(other.stats).toMatchObject({ active: 0, idle: 0, size: 0 });
  });
});
