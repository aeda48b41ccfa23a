import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';
import { sleep, until } from './poll.js';

/** A factory whose validate answers only when the test says so. */
function heldValidation() {
  let nextId = 0;
  const destroyed: number[] = [];
  const pending: ((ok: boolean) => void)[] = [];
  return {
    destroyed,
    pending,
    factory: {
      create: async () => ({ id: ++nextId }),
      destroy: async (resource: { id: number }) => {
        destroyed.push(resource.id);
      },
      validate: () => new Promise<boolean>((resolve) => pending.push(resolve)),
    },
  };
}

// An idle resource is BUSY while validateIdle checks it. What happened to it meanwhile (the pool
// closed, its connection reported broken) must hold when the check answers "fine".
describe('Pool: validateIdle answering after the resource changed hands', () => {
  it('close() during the check: the resource is not put back on the idle stack of the closed pool', async () => {
    const { factory, destroyed, pending } = heldValidation();
    const pool = new Pool(factory, { max: 1, validateIdle: true, evictionIntervalMs: 10 });
    pool.release(await pool.acquire());
    await until(() => pending.length === 1);
    await pool.close();
    expect(destroyed).toEqual([1]);
    pending[0]!(true);
    await sleep(20);
    expect(pool.stats).toEqual({ active: 0, idle: 0, waiting: 0, pending: 0, size: 0 });
    expect(destroyed).toEqual([1]);
  });

  it('invalidate() during the check: the broken resource is closed, not lent', async () => {
    const { factory, destroyed, pending } = heldValidation();
    const pool = new Pool(factory, { max: 1, validateIdle: true, evictionIntervalMs: 10 });
    const first = await pool.acquire();
    pool.release(first);
    await until(() => pending.length === 1);
    // The connection emitted 'error' while its ping was in flight (the ping still answers).
    pool.invalidate(first);
    const waiting = pool.acquire();
    pending[0]!(true);
    const lent = await waiting;
    expect(lent.id).toBe(2);
    expect(destroyed).toEqual([1]);
    pool.release(lent);
    await pool.close();
  });

  it('invalidate() during a validateOnBorrow check: the caller gets a new resource', async () => {
    const { factory, destroyed, pending } = heldValidation();
    const pool = new Pool(factory, { max: 1, validateOnBorrow: true, evictionIntervalMs: 600_000 });
    const first = await pool.acquire();
    pool.release(first);
    const waiting = pool.acquire();
    await until(() => pending.length === 1);
    pool.invalidate(first);
    pending[0]!(true);
    const lent = await waiting;
    expect(lent.id).toBe(2);
    expect(destroyed).toEqual([1]);
    pool.release(lent);
    await pool.close();
  });
});
