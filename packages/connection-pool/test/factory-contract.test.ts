import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, Pool, type ResourceFactory } from '../src/index.js';
import { until } from './poll.js';

// Factories written in plain JavaScript, or as non-async functions, break the typed contract in
// the two ways generic-pool and tarn tolerate (coopernurse/node-pool#194: an error thrown inside
// create; tarn's and generic-pool's destroy may return nothing): a create that throws before
// returning its promise, a destroy that returns undefined or throws. The pool must treat them as
// a failed create and a finished (or failed) destroy: not lose the slot, not crash the process
// from its eviction timer, not leave close() half done.
describe('Pool with a factory that throws synchronously or returns no promise', () => {
  it('a create that throws before returning a promise is a failed create: the caller gets BackendUnavailableError, no slot is lost', async () => {
    let calls = 0;
    const factory = {
      create: () => {
        calls += 1;
        if (calls === 1) throw new Error('bad config read');
        return Promise.resolve({ id: calls });
      },
      destroy: async () => {},
    } as ResourceFactory<{ id: number }>;
    const pool = new Pool(factory, { max: 1, initialBackoffMs: 0, acquireTimeoutMs: 2_000 });
    const failure = await pool.acquire().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(BackendUnavailableError);
    expect((failure as BackendUnavailableError).cause).toMatchObject({ message: 'bad config read' });
    expect(pool.stats).toMatchObject({ pending: 0, waiting: 0, size: 0 });
    const resource = await pool.acquire();
    expect(resource.id).toBe(2);
    pool.release(resource);
    await pool.close();
  });

  it('a destroy that returns undefined or throws: release of a broken resource, idle eviction and close() complete', async () => {
    let nextId = 0;
    const destroyed: number[] = [];
    const factory = {
      create: async () => ({ id: ++nextId }),
      // Plain JavaScript: `destroy(c) { c.end() }`, and one that throws for resource 2.
      destroy: (resource: { id: number }) => {
        destroyed.push(resource.id);
        if (resource.id === 2) throw new Error('already closed');
        return undefined;
      },
    } as unknown as ResourceFactory<{ id: number }>;
    const pool = new Pool(factory, { max: 4, idleTimeoutMs: 20, evictionIntervalMs: 10 });
    const [one, two, three] = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    pool.invalidate(one!);
    pool.release(one!); // broken: destroyed on return
    pool.destroy(two!); // throws inside destroy
    pool.release(three!); // idle, then evicted by the timer
    await until(() => destroyed.includes(3));
    expect(pool.stats.size).toBe(0);
    pool.release(await pool.acquire());
    await expect(pool.close()).resolves.toMatchObject({ unreleased: [] });
    expect(destroyed.sort()).toEqual([1, 2, 3, 4]);
  });
});
