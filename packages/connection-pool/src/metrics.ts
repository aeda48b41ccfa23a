import { GaugeShare, MetricsFactory } from '@noa/core';
import type { Registry } from 'prom-client';

/**
 * Help of `errors_total`, shared by every registration of it (pools, clusters, Redis, Mongo): its
 * kinds are those the README's metrics table lists.
 */
export const errorsHelp =
  'Connection errors by kind (create, validate, unavailable, query-connection, query-timeout, checkout-<reason>, pool-cleared)';

/** Help of `routed_queries_total` (SQL clusters and Mongo pools). */
export const routedHelp = 'Queries by target server and routing reason';

/** One pool's metrics, bound to its `pool` label. Every method is a no-op without a registry. */
export interface PoolMetrics {
  readonly enabled: boolean;
  readonly active: { inc(): void; dec(): void };
  readonly idle: { inc(): void; dec(): void };
  readonly waiting: { inc(): void; dec(): void };
  readonly acquireSeconds: { observe(seconds: number): void };
  readonly timeouts: { inc(): void };
  readonly errors: { inc(labels: { kind: string }): void };
  readonly leaks: { inc(): void };
  readonly created: { inc(): void };
  readonly destroyed: { inc(): void };
  /**
   * Takes this pool's share out of the gauges for good (at close): pools that share a registry
   * and a `pool` label (a config reload's old and new pool) add up, each counting only its own.
   */
  release(): void;
}

/**
 * Creates (or joins, on a shared registry) the pool metrics:
 * `noa_connection_pool_active_connections`, `…_idle_connections`, `…_waiting_requests`,
 * `…_acquire_duration_seconds`, `…_acquire_timeouts_total`, `…_errors_total{kind}`,
 * `…_leaks_total`, `…_connections_created_total`, `…_connections_destroyed_total`. The gauges
 * are each pool's share (core's `GaugeShare`): two pools with one `pool` label on one registry
 * add up, and `release()` takes a closed pool's share out.
 */
export function poolMetrics(registry: Registry | undefined, pool: string): PoolMetrics {
  const factory = new MetricsFactory('connection_pool', registry);
  const labels = { pool };
  const shares: GaugeShare<'pool'>[] = [];
  const gauge = (name: string, help: string) => {
    const metric = factory.gauge(name, help, ['pool']);
    // inc by 0 so the series exists before the first change; a set(0) would wipe the share of
    // another pool with the same label (the old pool of a config reload).
    metric.inc(labels, 0);
    const share = new GaugeShare(metric, labels);
    shares.push(share);
    let value = 0;
    return {
      inc: () => {
        value += 1;
        share.set(value);
      },
      dec: () => {
        value -= 1;
        share.set(value);
      },
    };
  };
  const counter = (name: string, help: string) => {
    const metric = factory.counter(name, help, ['pool']);
    return { inc: () => metric.inc(labels) };
  };
  const errors = factory.counter('errors_total', errorsHelp, ['pool', 'kind']);
  const acquire = factory.histogram('acquire_duration_seconds', 'Time from acquire() to a lent connection', [
    'pool',
  ]);
  return {
    enabled: factory.enabled,
    active: gauge('active_connections', 'Connections lent to callers'),
    idle: gauge('idle_connections', 'Open connections not lent'),
    waiting: gauge('waiting_requests', 'Callers queued for a connection'),
    acquireSeconds: { observe: (seconds) => acquire.observe(labels, seconds) },
    timeouts: counter('acquire_timeouts_total', 'acquire() calls that timed out'),
    errors: { inc: ({ kind }) => errors.inc({ pool, kind }) },
    leaks: counter('leaks_total', 'Connections held past the leak threshold or never released'),
    created: counter('connections_created_total', 'Connections opened'),
    destroyed: counter('connections_destroyed_total', 'Connections closed'),
    release: () => {
      for (const share of shares) share.release();
    },
  };
}
