import { type Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SqlCluster, type SqlDriver } from '../src/index.js';

/**
 * A driver whose servers answer at once and whose replicas report `lag.ms` (Infinity: replication
 * stopped; `lag.down`: the probe fails). No server: the cluster's own bookkeeping is under test.
 */
function fakeDriver(lag: { ms: number; down?: boolean }): SqlDriver<object, string, unknown> {
  return {
    name: 'fake',
    dialect: 'postgres',
    defaultRetryCodes: [],
    connect: async ({ config }) => ({ config }),
    close: async () => {},
    abort: () => {},
    query: async () => ({}),
    ping: async () => {},
    replicationLagMs: async (conn) => {
      if ((conn as { config: string }).config === 'primary') return 0;
      if (lag.down === true) throw new Error('connection refused');
      return lag.ms;
    },
    beginStatements: () => [],
    isConnectionError: () => false,
    errorCodes: () => [],
  };
}

/** Every checkHealth() here probes: no answer is reused. */
const fresh = { maxAgeMs: 0 };

/** One lag probe per replica happens at construction; later ones only through checkHealth(). */
function cluster(registry: Registry, name: string, lag: { ms: number; down?: boolean }) {
  return new SqlCluster(fakeDriver(lag), {
    name,
    primary: 'primary',
    replicas: ['replica'],
    healthCheckIntervalMs: 3_600_000,
    maxReplicaLagMs: 1_000,
    registry,
  });
}

/** The value of `noa_connection_pool_<what>{cluster, replica="replica0"}` (undefined: no such series). */
async function series(registry: Registry, what: string, name: string): Promise<number | undefined> {
  const metric = registry.getSingleMetric(`noa_connection_pool_${what}`) as Gauge | undefined;
  const values = (await metric?.get())?.values ?? [];
  const found = values.filter(
    (value) => value.labels.cluster === name && value.labels.replica === 'replica0',
  );
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

describe('replica_in_rotation and replica_lag_seconds', () => {
  it('two clusters of one name on one registry: in_rotation adds up, lag is the largest; close takes each out', async () => {
    const registry = new Registry();
    const lagA = { ms: 200 };
    const lagB = { ms: 700 };
    const a = cluster(registry, 'orders', lagA);
    const b = cluster(registry, 'orders', lagB);
    try {
      await a.checkHealth(fresh);
      await b.checkHealth(fresh);
      expect(await series(registry, 'replica_in_rotation', 'orders')).toBe(2);
      expect(await series(registry, 'replica_lag_seconds', 'orders')).toBe(0.7);
      // The older value of the other cluster is not overwritten by a later probe of this one.
      lagA.ms = 100;
      await a.checkHealth(fresh);
      expect(await series(registry, 'replica_lag_seconds', 'orders')).toBe(0.7);

      // b's replica falls behind (two probes over the bound): out of its rotation, not a's.
      lagB.ms = 5_000;
      await b.checkHealth(fresh);
      await b.checkHealth(fresh);
      expect(b.health().replicas[0]!.healthy).toBe(false);
      expect(await series(registry, 'replica_in_rotation', 'orders')).toBe(1);
      expect(await series(registry, 'replica_lag_seconds', 'orders')).toBe(5);

      await b.close();
      expect(await series(registry, 'replica_in_rotation', 'orders')).toBe(1);
      expect(await series(registry, 'replica_lag_seconds', 'orders')).toBe(0.1);

      // A closed cluster's replicas are not reported: no series, rather than "out of rotation".
      await a.close();
      expect(await series(registry, 'replica_in_rotation', 'orders')).toBeUndefined();
      expect(await series(registry, 'replica_lag_seconds', 'orders')).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a probe answering after close() does not bring the series back', async () => {
    const registry = new Registry();
    const db = cluster(registry, 'late', { ms: 10 });
    const probing = db.checkHealth(fresh);
    await db.close();
    await probing.catch(() => {});
    expect(await series(registry, 'replica_in_rotation', 'late')).toBeUndefined();
    expect(await series(registry, 'replica_lag_seconds', 'late')).toBeUndefined();
  });

  it('an unknown lag (replication stopped, probe failed) is not exported', async () => {
    const registry = new Registry();
    const lag = { ms: 300, down: false };
    const db = cluster(registry, 'stopped', lag);
    try {
      await db.checkHealth(fresh);
      expect(await series(registry, 'replica_lag_seconds', 'stopped')).toBe(0.3);
      lag.ms = Number.POSITIVE_INFINITY;
      await db.checkHealth(fresh);
      expect(await series(registry, 'replica_lag_seconds', 'stopped')).toBeUndefined();
      lag.ms = 300;
      await db.checkHealth(fresh);
      expect(await series(registry, 'replica_lag_seconds', 'stopped')).toBe(0.3);
      lag.down = true;
      await db.checkHealth(fresh);
      expect(db.health().replicas[0]!.reason).toBe('down');
      expect(await series(registry, 'replica_lag_seconds', 'stopped')).toBeUndefined();
      expect(await series(registry, 'replica_in_rotation', 'stopped')).toBe(0);
    } finally {
      await db.close();
    }
  });

  it('without a registry nothing is recorded and nothing throws', async () => {
    const db = new SqlCluster(fakeDriver({ ms: Number.POSITIVE_INFINITY }), {
      primary: 'primary',
      replicas: ['replica'],
      healthCheckIntervalMs: 3_600_000,
    });
    await db.checkHealth(fresh);
    await db.close();
  });
});
