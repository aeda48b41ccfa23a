import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { type Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createPgPool, type PgPool } from '../../src/pg.js';

const url = serviceUrl('postgres');
const skip = (await isReachable('postgres')) ? undefined : `skipped: no Postgres at ${url}`;
if (skip) console.log(skip);

/** The value of `noa_connection_pool_<what>{pool}` on `registry` (undefined: no such series). */
async function gauge(registry: Registry, what: string, pool: string): Promise<number | undefined> {
  const metric = registry.getSingleMetric(`noa_connection_pool_${what}`) as Gauge | undefined;
  const values = (await metric?.get())?.values ?? [];
  return values.find((value) => value.labels.pool === pool)?.value;
}

/** Leaves `count` connections idle in the primary's pool (opened by concurrent queries). */
async function openIdle(pool: PgPool, count: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: count }, () => pool.connect()));
  for (const client of clients) client.release();
}

describe.skipIf(skip !== undefined)('two pools of one name on one registry (shared Postgres)', () => {
  it('each pool adds its own share to the gauges, and a closed pool takes its share out', async () => {
    const registry = new Registry();
    const name = uniqueName('share');
    const series = `${name}:primary`;
    const options = { name, primary: url, registry, pool: { idleTimeoutMs: 60_000 } };
    const first = createPgPool(options);
    let second: PgPool | undefined;
    try {
      await openIdle(first, 2);
      expect(await gauge(registry, 'idle_connections', series)).toBe(2);

      // A config reload: the new pool starts while the old one still holds its connections.
      second = createPgPool(options);
      expect(await gauge(registry, 'idle_connections', series)).toBe(2);
      await openIdle(second, 1);
      expect(await gauge(registry, 'idle_connections', series)).toBe(3);

      const lent = await second.connect();
      expect(await gauge(registry, 'active_connections', series)).toBe(1);
      expect(await gauge(registry, 'idle_connections', series)).toBe(2);
      lent.release();

      await first.close();
      expect(await gauge(registry, 'idle_connections', series)).toBe(1);
      expect(await gauge(registry, 'active_connections', series)).toBe(0);
      expect(await gauge(registry, 'waiting_requests', series)).toBe(0);

      await second.close();
      expect(await gauge(registry, 'idle_connections', series)).toBe(0);
      expect(await gauge(registry, 'active_connections', series)).toBe(0);
    } finally {
      await first.close();
      await second?.close();
    }
  });

  it('replica series: in_rotation counts the open clusters, lag is the largest, closed clusters leave them', async () => {
    const registry = new Registry();
    const name = uniqueName('replshare');
    /** `replica_<what>{cluster=name, replica="replica0"}` (undefined: no such series). */
    const replica = async (what: string) => {
      const metric = registry.getSingleMetric(`noa_connection_pool_replica_${what}`) as Gauge | undefined;
      const values = (await metric?.get())?.values ?? [];
      return values.find((value) => value.labels.cluster === name && value.labels.replica === 'replica0')
        ?.value;
    };
    // The server as its own replica: not in recovery, so its lag is 0.
    const options = { name, primary: url, replicas: [url], registry, healthCheckIntervalMs: 60_000 };
    const first = createPgPool(options);
    const second = createPgPool(options);
    try {
      await first.checkHealth();
      await second.checkHealth();
      expect(await replica('in_rotation')).toBe(2);
      expect(await replica('lag_seconds')).toBe(0);
      await first.close();
      expect(await replica('in_rotation')).toBe(1);
      expect(await replica('lag_seconds')).toBe(0);
      await second.close();
      expect(await replica('in_rotation')).toBeUndefined();
      expect(await replica('lag_seconds')).toBeUndefined();
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('a new pool shows its series at 0 before any change', async () => {
    const registry = new Registry();
    const name = uniqueName('fresh');
    const pool = createPgPool({ name, primary: url, registry });
    try {
      expect(await gauge(registry, 'idle_connections', `${name}:primary`)).toBe(0);
      expect(await gauge(registry, 'active_connections', `${name}:primary`)).toBe(0);
      expect(await gauge(registry, 'waiting_requests', `${name}:primary`)).toBe(0);
    } finally {
      await pool.close();
    }
  });
});
