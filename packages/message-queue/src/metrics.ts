import {
  type CounterMetric,
  type GaugeMetric,
  type GaugeVote,
  gaugeVote,
  type HistogramMetric,
  MetricsFactory,
  type VotedGauge,
} from '@noa/core';
import type { Registry } from 'prom-client';

/** The metrics of queues and workers (all labelled by `queue`). */
export interface QueueMetrics {
  /** False without a registry: every metric is a no-op, so hot paths skip computing observations. */
  enabled: boolean;
  added: CounterMetric<'queue'>;
  completed: CounterMetric<'queue'>;
  failed: CounterMetric<'queue'>;
  retried: CounterMetric<'queue'>;
  deadLettered: CounterMetric<'queue'>;
  stalled: CounterMetric<'queue'>;
  leasesLost: CounterMetric<'queue'>;
  redeliveriesSettled: CounterMetric<'queue'>;
  processingSeconds: HistogramMetric<'queue'>;
  waitSeconds: HistogramMetric<'queue'>;
  depth: GaugeMetric<'queue' | 'state'>;
  /**
   * One queue object's vote on `queue_depth_stale` (1 while its last count failed or is
   * unanswered): the series is the minimum over the queue objects of that name on the registry,
   * since `depth` holds the values of whichever counted last. When the last vote is released
   * (the last of them closed) the queue's `depth` series go with it.
   */
  depthStale(queue: string): GaugeVote;
  /**
   * One worker's vote on `backend_up` (1 while its backend answers, 0 from a failed or unanswered
   * call until the next answer): the series is the minimum over the workers of that queue on the
   * registry, absent while none has an answer yet.
   */
  backendUp(queue: string): GaugeVote;
  /**
   * Has `refresh` run at every scrape of the registry (it sets `depth`), until the returned
   * function is called. Without a registry it never runs.
   */
  watchDepth(refresh: () => Promise<void>): () => void;
}

/**
 * The depth refreshers of each registry's `queue_depth_jobs` gauge (one gauge per registry, shared
 * by every queue on it): the gauge's prom-client `collect` runs them all at each scrape.
 */
const depthRefreshers = new WeakMap<object, Set<() => Promise<void>>>();

function watchDepth(registry: Registry | undefined, refresh: () => Promise<void>): () => void {
  const gauge = registry?.getSingleMetric('noa_message_queue_queue_depth_jobs') as
    | { collect?: () => Promise<void> }
    | undefined;
  if (!gauge) return () => {};
  let refreshers = depthRefreshers.get(gauge);
  if (!refreshers) {
    const all = new Set<() => Promise<void>>();
    refreshers = all;
    depthRefreshers.set(gauge, all);
    // prom-client's documented `collect` hook, set on the shared gauge once (core's factory
    // creates it without one). Each refresher bounds and reports its own failures.
    gauge.collect = async () => {
      await Promise.all([...all].map((run) => run()));
    };
  }
  refreshers.add(refresh);
  return () => refreshers.delete(refresh);
}

/**
 * A vote on the series `labels` of the registry's gauge `name` (workers of one queue, queue
 * objects of one name), which shows the minimum of the values of the instances that know one,
 * and is removed while none does (no series: unknown, rather than a value nobody measured).
 */
function minimumVote(
  registry: Registry | undefined,
  name: string,
  labels: Record<string, string>,
  onLastReleased?: () => void,
): GaugeVote {
  const gauge = registry?.getSingleMetric(name) as VotedGauge | undefined;
  return gaugeVote(gauge, labels, (values) => Math.min(...values), onLastReleased);
}

const depthStates = ['waiting', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;

/** Removes a queue's `queue_depth_jobs` series: nothing counts them any more. */
function removeDepth(registry: Registry | undefined, queue: string): void {
  const gauge = registry?.getSingleMetric('noa_message_queue_queue_depth_jobs') as VotedGauge | undefined;
  for (const state of depthStates) gauge?.remove({ queue, state });
}

const secondsBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Creates (or reuses, on a shared registry) the `noa_message_queue_*` metrics. */
export function createQueueMetrics(registry?: Registry): QueueMetrics {
  const factory = new MetricsFactory('message_queue', registry);
  // Created here so that they are on the registry (and checked against what is there) from the
  // start; their values are set through votes (see `minimumVote`).
  factory.gauge(
    'backend_up',
    "0 while any worker of the queue finds its backend down (a failed call, or one unanswered for backendTimeoutMs, until one is answered), 1 while all that know answer; absent before a worker's first answer",
    ['queue'],
  );
  factory.gauge(
    'queue_depth_stale',
    '1 while queue_depth_jobs holds the values of an earlier count: the last count of every queue object of that name failed or is unanswered',
    ['queue'],
  );
  return {
    enabled: factory.enabled,
    added: factory.counter('jobs_added_total', 'Jobs enqueued', ['queue']),
    completed: factory.counter('jobs_completed_total', 'Jobs completed', ['queue']),
    failed: factory.counter('jobs_failed_total', 'Failed tries (retried or dead-lettered)', ['queue']),
    retried: factory.counter('jobs_retried_total', 'Failed tries scheduled for a retry', ['queue']),
    deadLettered: factory.counter('jobs_dead_lettered_total', 'Jobs moved to the dead-letter queue', [
      'queue',
    ]),
    stalled: factory.counter('jobs_stalled_total', 'Jobs recovered from a lost worker', ['queue']),
    leasesLost: factory.counter(
      'leases_lost_total',
      'Settlements and lease renewals refused because their lease had ended (a stalled worker)',
      ['queue'],
    ),
    redeliveriesSettled: factory.counter(
      'redeliveries_settled_total',
      "Redeliveries settled with the outcome of this worker's try that finished after its broker channel closed, instead of running the job again (RabbitMQ without a state store)",
      ['queue'],
    ),
    processingSeconds: factory.histogram(
      'processing_seconds',
      'Handler run time per try',
      ['queue'],
      secondsBuckets,
    ),
    waitSeconds: factory.histogram(
      'queue_wait_seconds',
      'Time from runnable to handler start',
      ['queue'],
      secondsBuckets,
    ),
    depth: factory.gauge('queue_depth_jobs', 'Jobs per state, counted at scrape time', ['queue', 'state']),
    depthStale: (queue) =>
      minimumVote(registry, 'noa_message_queue_queue_depth_stale', { queue }, () =>
        removeDepth(registry, queue),
      ),
    backendUp: (queue) => minimumVote(registry, 'noa_message_queue_backend_up', { queue }),
    watchDepth: (refresh) => watchDepth(registry, refresh),
  };
}
