import type { Clock } from '@noa/core';
import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

/** A host clock `skewMs` off the real one (NTP broken or not yet synced). */
const skewedClock = (skewMs: number): Clock => ({ now: () => Date.now() + skewMs });

describe.skipIf(!redis.reachable)("Redis leases are timed by Redis's clock, not the workers'", () => {
  afterAll(() => redis.closeAll());

  it('a worker whose clock lags by far more than leaseMs keeps its job against one whose clock is ahead', async () => {
    const provider = new RedisProvider({ connection: redis.connect() });
    const name = uniqueName('skew');
    const lagging = new Queue({ name, provider, clock: skewedClock(-60_000) });
    const ahead = new Queue({ name, provider, clock: skewedClock(60_000) });
    const { id } = await lagging.add('slow', null);
    const runs: string[] = [];
    let finish = (): void => {};
    const mayFinish = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const holder = new Worker({
      queue: lagging,
      leaseMs: 500,
      maintenanceIntervalMs: 60_000,
      handler: async () => {
        runs.push('lagging');
        await mayFinish;
        return 'done';
      },
    });
    await waitFor(() => runs.length === 1, 5_000, 'the lagging worker to start the job');
    // Its lease, scored by its own clock, would look expired a minute ago to the other worker,
    // whose clock is a minute ahead: that worker's maintenance (every 100 ms) would take the job.
    const other = new Worker({
      queue: ahead,
      leaseMs: 500,
      maintenanceIntervalMs: 100,
      handler: () => {
        runs.push('ahead');
      },
    });
    // Four lease lengths: the holder's renewals keep the lease, whatever either host's clock says.
    await sleep(2_000);
    expect(runs).toEqual(['lagging']);
    finish();
    await waitFor(
      async () => (await lagging.getJob(id))?.state === 'completed',
      5_000,
      'the job to complete',
    );
    expect((await lagging.getJob(id))?.result).toBe('done');
    expect(runs).toEqual(['lagging']);
    await Promise.all([holder.close(), other.close()]);
    await provider.close();
  });
});
