import { type Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';

/** Sum and count of `noa_connection_pool_acquire_duration_seconds{pool}`. */
async function acquireSeconds(registry: Registry, pool: string): Promise<{ sum: number; count: number }> {
  const metric = registry.getSingleMetric('noa_connection_pool_acquire_duration_seconds') as Histogram;
  const values = (await metric.get()).values.filter((value) => value.labels.pool === pool);
  const pick = (name: string) => values.find((value) => value.metricName === name)?.value ?? Number.NaN;
  return {
    sum: pick('noa_connection_pool_acquire_duration_seconds_sum'),
    count: pick('noa_connection_pool_acquire_duration_seconds_count'),
  };
}

describe('acquire_duration_seconds', () => {
  it('is measured below the millisecond (its buckets start at 50 µs)', async () => {
    const registry = new Registry();
    let next = 0;
    // Each connect takes a turn of the event loop: well under a millisecond, never zero.
    const pool = new Pool(
      {
        create: () =>
          new Promise<number>((resolve) =>
            setImmediate(() => {
              next += 1;
              resolve(next);
            }),
          ),
        destroy: async () => {},
      },
      { name: 'hr', max: 20, registry },
    );
    try {
      const lent = await Promise.all(Array.from({ length: 20 }, () => pool.acquire()));
      for (const each of lent) pool.release(each);
      const { sum, count } = await acquireSeconds(registry, 'hr');
      expect(count).toBe(20);
      expect(sum).toBeGreaterThan(0);
      // A millisecond clock makes every observation a whole number of milliseconds.
      const milliseconds = sum * 1_000;
      expect(Math.abs(milliseconds - Math.round(milliseconds))).toBeGreaterThan(1e-6);
    } finally {
      await pool.close();
    }
  });
});
