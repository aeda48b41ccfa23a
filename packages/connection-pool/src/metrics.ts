import {
  GaugeShare,
  type GaugeVote,
  gaugeVote,
  MetricsFactory,
  metricLabelValue,
  type VotedGauge,
} from '@noa/core';
import type { Registry } from 'prom-client';

/**
 * Help of `errors_total`, shared by every registration of it (pools, clusters, Redis, Mongo): its
 * kinds are those the README's metrics table lists.
 */
export const errorsHelp =
  'Connection errors by kind (create, validate, reset, unavailable, queue_full, destroy_timeout, query_connection, query_timeout, checkout_<reason>, pool_cleared)';

/**
 * Help of `routed_queries_total` (SQL clusters and Mongo pools, both labelled `cluster`, `target`,
 * `reason`: one registry holds both).
 */
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
    // Kinds in the metrics' spelling (a driver's `checkout-connectionError` is `checkout_connection_error`).
    errors: { inc: ({ kind }) => errors.inc({ pool, kind: metricLabelValue(kind) }) },
    leaks: counter('leaks_total', 'Connections held past the leak threshold or never released'),
    created: counter('connections_created_total', 'Connections opened'),
    destroyed: counter('connections_destroyed_total', 'Connections closed'),
    release: () => {
      for (const share of shares) share.release();
    },
  };
}

/**
 * One cluster's view of its replicas in `replica_in_rotation` and `replica_lag_seconds`. Every
 * method is a no-op without a registry, and after {@link release}.
 */
export interface ReplicaMetrics {
  /** Whether `replica` takes this cluster's reads now. */
  inRotation(replica: string, inRotation: boolean): void;
  /** `replica`'s last measured lag, or undefined when it is not known (replication stopped, probe failed). */
  lagSeconds(replica: string, seconds: number | undefined): void;
  /** Takes this cluster out of both series for good (at close). */
  release(): void;
}

/** The registry's gauge `name` (created, or checked against the one already there), to vote on. */
function votedGauge(
  factory: MetricsFactory,
  registry: Registry | undefined,
  name: string,
  help: string,
  labelNames: readonly string[],
): VotedGauge | undefined {
  // The factory checks a metric already on the registry (type, label names) or creates it.
  factory.gauge(name, help, labelNames);
  return registry?.getSingleMetric(`noa_connection_pool_${name}`) as VotedGauge | undefined;
}

/**
 * The replica series of the SQL cluster named `cluster`: `replica_in_rotation{cluster, replica}`
 * and `replica_lag_seconds{cluster, replica}`. Clusters of one name on one registry (a config
 * reload's old and new cluster) each keep their own value: in_rotation is the number of them
 * that have the replica in rotation, lag the largest lag they last measured. A series none of
 * the live clusters reports on (all closed, or the lag unknown to all) is removed.
 */
export function replicaMetrics(registry: Registry | undefined, cluster: string): ReplicaMetrics {
  const factory = new MetricsFactory('connection_pool', registry);
  const inRotation = votedGauge(
    factory,
    registry,
    'replica_in_rotation',
    '1 while a replica takes reads, else 0 (summed over the open clusters of one name on one registry)',
    ['cluster', 'replica'],
  );
  const lag = votedGauge(
    factory,
    registry,
    'replica_lag_seconds',
    'Last measured replication lag (absent while unknown: replication stopped, replica unreachable)',
    ['cluster', 'replica'],
  );
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
  const max = (values: number[]) => Math.max(...values);
  /** This cluster's votes per replica it reported on. */
  const votes = new Map<string, { inRotation: GaugeVote; lag: GaugeVote }>();
  const votesOf = (replica: string) => {
    let replicaVotes = votes.get(replica);
    if (replicaVotes === undefined) {
      const labels = { cluster, replica };
      replicaVotes = { inRotation: gaugeVote(inRotation, labels, sum), lag: gaugeVote(lag, labels, max) };
      votes.set(replica, replicaVotes);
    }
    return replicaVotes;
  };
  let released = false;
  return {
    inRotation: (replica, taking) => {
      if (!released) votesOf(replica).inRotation.set(taking ? 1 : 0);
    },
    lagSeconds: (replica, seconds) => {
      if (!released) votesOf(replica).lag.set(seconds);
    },
    release: () => {
      released = true;
      for (const replicaVotes of votes.values()) {
        replicaVotes.inRotation.release();
        replicaVotes.lag.release();
      }
    },
  };
}
