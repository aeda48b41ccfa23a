import { describe, expect, it } from 'vitest';
import { AcquireTimeoutError, Pool, PoolClosedError } from '../src/index.js';
import { sleep, until } from './poll.js';

/** A factory whose creates answer only when the test says so. */
function heldCreates() {
  let nextId = 0;
  const destroyed: number[] = [];
  const opening: (() => void)[] = [];
  return {
    destroyed,
    opening,
    factory: {
      create: () =>
        new Promise<{ id: number }>((resolve) => {
          opening.push(() => resolve({ id: ++nextId }));
        }),
      destroy: async (resource: { id: number }) => {
        destroyed.push(resource.id);
      },
    },
  };
}

// A connect that finishes after its caller stopped waiting: brianc/node-postgres#3543 (a connect
// that outlived connectionTimeoutMillis stayed open on the server, tracked by the pool but never
// idle) and brianc/node-pg-pool#106 (pool.end() during a connect never finished).
describe('Pool: a create that finishes after its caller stopped waiting', () => {
  it('after an acquire timeout, the late resource goes idle and serves the next caller', async () => {
    const { factory, destroyed, opening } = heldCreates();
    const pool = new Pool(factory, { max: 1 });
    await expect(pool.acquire({ timeoutMs: 10 })).rejects.toBeInstanceOf(AcquireTimeoutError);
    expect(pool.stats).toMatchObject({ pending: 1, waiting: 0 });
    opening[0]!();
    await sleep(5);
    expect(pool.stats).toMatchObject({ idle: 1, pending: 0, size: 1 });
    const next = await pool.acquire();
    expect(next.id).toBe(1);
    expect(opening).toHaveLength(1);
    pool.release(next);
    await pool.close();
    expect(destroyed).toEqual([1]);
  });

  it('after close(), the late resource is closed and close() is not held by it', async () => {
    const { factory, destroyed, opening } = heldCreates();
    const pool = new Pool(factory, { max: 1 });
    const waiting = pool.acquire();
    await expect(pool.close()).resolves.toEqual({ unreleased: [] });
    await expect(waiting).rejects.toBeInstanceOf(PoolClosedError);
    opening[0]!();
    await sleep(5);
    expect(destroyed).toEqual([1]);
    expect(pool.stats).toEqual({ active: 0, idle: 0, waiting: 0, pending: 0, size: 0 });
  });

  // invalidateAll() is the failover hook ("every resource broken: new acquires open fresh
  // connections at once"): a connect already under way when it is called went to the old server.
  it('after invalidateAll(), a create begun before it is closed and a fresh one lent instead', async () => {
    const { factory, destroyed, opening } = heldCreates();
    const pool = new Pool(factory, { max: 1 });
    const waiting = pool.acquire();
    expect(opening).toHaveLength(1);
    pool.invalidateAll();
    opening[0]!(); // resource 1: connected to the old server
    await until(() => opening.length === 2);
    opening[1]!(); // resource 2, opened after the failover
    const lent = await waiting;
    expect(lent.id).toBe(2);
    expect(destroyed).toEqual([1]);
    pool.release(lent);
    await pool.close();
  });
});
