import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { AcquireAbortedError, AcquireTimeoutError, Pool } from '../src/index.js';

/**
 * generic-pool#108 ("waitingClients grows w/o bounds"): while every connection is held (a slow
 * database, a leak), callers who gave up (timed out, aborted) must not stay queued until the next
 * release. Each queued caller holds its `signal`; a WeakRef on it tells whether the pool still
 * keeps the caller.
 */
describe('Pool: callers who stopped waiting while every resource is held', () => {
  it('are not kept by the pool until the next release (default timeout, own timeout, aborted)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let nextId = 0;
    const pool = new Pool(
      { create: async () => ({ id: ++nextId }), destroy: async () => {} },
      { max: 1, acquireTimeoutMs: 50 },
    );
    const held = await pool.acquire();
    const signals: WeakRef<AbortSignal>[] = [];
    const outcomes: Promise<string>[] = [];
    for (let index = 0; index < 3_000; index += 1) {
      const controller = new AbortController();
      signals.push(new WeakRef(controller.signal));
      const kind = index % 3;
      const attempt =
        kind === 1
          ? pool.acquire({ signal: controller.signal, timeoutMs: 10 })
          : pool.acquire({ signal: controller.signal });
      if (kind === 2) controller.abort(new Error('client went away'));
      outcomes.push(
        attempt.then(
          () => 'served',
          (error: unknown) =>
            error instanceof AcquireTimeoutError
              ? 'timeout'
              : error instanceof AcquireAbortedError
                ? 'aborted'
                : String(error),
        ),
      );
    }
    const settled = await Promise.all(outcomes);
    expect(settled.filter((outcome) => outcome === 'timeout')).toHaveLength(2_000);
    expect(settled.filter((outcome) => outcome === 'aborted')).toHaveLength(1_000);
    expect(pool.stats).toMatchObject({ active: 1, waiting: 0 });
    outcomes.length = 0;
    // WeakRef targets survive the job that created them: collect after a turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const kept = signals.filter((ref) => ref.deref() !== undefined).length;
    // Generous: a few may be held by the engine for other reasons; before the fix all 3000 were.
    expect(kept).toBeLessThan(30);
    pool.release(held);
    await pool.close();
  });

  it('the callers still waiting after the others were forgotten are served in arrival order', async () => {
    let nextId = 0;
    const pool = new Pool(
      { create: async () => ({ id: ++nextId }), destroy: async () => {} },
      { max: 1, acquireTimeoutMs: 60_000 },
    );
    const held = await pool.acquire();
    const served: number[] = [];
    const patient: Promise<void>[] = [];
    const impatient: Promise<unknown>[] = [];
    for (let index = 0; index < 2_000; index += 1) {
      if (index % 200 === 0) {
        const place = index / 200;
        patient.push(
          pool.acquire().then((resource) => {
            served.push(place);
            pool.release(resource);
          }),
        );
      } else {
        impatient.push(pool.acquire({ timeoutMs: 5 }).catch(() => undefined));
      }
    }
    await Promise.all(impatient);
    expect(pool.stats.waiting).toBe(10);
    pool.release(held);
    await Promise.all(patient);
    expect(served).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await pool.close();
  });
});
