import { describe, expect, it } from 'vitest';
import { clusterReport, serverReport } from '../src/health.js';
import { PoolClosedError } from '../src/index.js';

const up = { healthy: true, reason: undefined, error: undefined };
const failure = new Error('connect ECONNREFUSED');
const down = { healthy: false, reason: 'down' as const, error: failure };
const lagging = { healthy: false, reason: 'lag' as const, error: undefined };
const base = { closed: false, replicaFallback: 'primary' as const, now: 4 };

describe('clusterReport', () => {
  it('is up while the primary and every replica serve', () => {
    expect(clusterReport('db', { ...base, primary: up, replicas: [up, up] })).toEqual({
      component: 'db',
      status: 'up',
      checkedAt: 4,
      details: { primary: 'up', replicas: 2, replicasInRotation: 2 },
    });
  });

  it('is down while the primary is down or unresponsive, with its error', () => {
    expect(clusterReport('db', { ...base, primary: down, replicas: [up] })).toMatchObject({
      status: 'down',
      cause: failure,
      details: { primary: 'down' },
    });
    const frozen = { healthy: false, reason: 'unresponsive' as const, error: undefined };
    const report = clusterReport('db', { ...base, primary: frozen, replicas: [] });
    expect(report).toMatchObject({ status: 'down', details: { primary: 'unresponsive' } });
    expect(report).not.toHaveProperty('cause');
  });

  it('is degraded while a replica is out of rotation (its reads go elsewhere)', () => {
    expect(clusterReport('db', { ...base, primary: up, replicas: [up, down] })).toMatchObject({
      status: 'degraded',
      cause: failure,
      details: { replicasInRotation: 1 },
    });
    expect(clusterReport('db', { ...base, primary: up, replicas: [lagging] }).status).toBe('degraded');
  });

  it("is down with no replica in rotation and replicaFallback: 'error' (reads fail)", () => {
    expect(
      clusterReport('db', { ...base, replicaFallback: 'error', primary: up, replicas: [lagging, down] }),
    ).toMatchObject({ status: 'down', cause: failure, details: { replicasInRotation: 0 } });
    expect(
      clusterReport('db', { ...base, replicaFallback: 'error', primary: up, replicas: [up, down] }).status,
    ).toBe('degraded');
  });

  it('is down once closed, with a PoolClosedError', () => {
    const report = clusterReport('db', { ...base, closed: true, primary: up, replicas: [] });
    expect(report.status).toBe('down');
    expect(report.cause).toBeInstanceOf(PoolClosedError);
  });
});

describe('serverReport', () => {
  const stats = { active: 1, idle: 0, waiting: 0, pending: 0, size: 1 };
  it('is up or down with the error and reason, with the stats in details', () => {
    expect(serverReport('redis', { closed: false, healthy: true, error: undefined, stats, now: 1 })).toEqual({
      component: 'redis',
      status: 'up',
      checkedAt: 1,
      details: stats,
    });
    expect(
      serverReport('redis', { closed: false, healthy: false, reason: 'down', error: failure, stats, now: 1 }),
    ).toMatchObject({ status: 'down', cause: failure, details: { reason: 'down' } });
    expect(
      serverReport('redis', { closed: true, healthy: true, error: undefined, stats, now: 1 }).cause,
    ).toBeInstanceOf(PoolClosedError);
  });
});
