import {
  type BreakerState,
  type CounterMetric,
  type GaugeMetric,
  GaugeShare,
  type HistogramMetric,
  latencyBucketsSeconds,
  MetricsFactory,
  metricLabelValue,
} from '@noa/core';
import type { Registry } from 'prom-client';
import { CacheCounters } from './cache-counters.js';
import type { MetricsRegistry } from './metrics-registry.js';

/** Tier label values. */
export type Tier = 'l1' | 'l2';

type RequestResult = 'hit' | 'miss' | 'stale';

type RequestLabels = { cache: string; tier: Tier; result: RequestResult };

/** One label object per (tier, result) of the cache `cache`, built once: `request` runs on every lookup. */
function requestLabelsOf(cache: string): Record<Tier, Record<RequestResult, RequestLabels>> {
  const of = (tier: Tier) => ({
    hit: { cache, tier, result: 'hit' as const },
    miss: { cache, tier, result: 'miss' as const },
    stale: { cache, tier, result: 'stale' as const },
  });
  return { l1: of('l1'), l2: of('l2') };
}

/**
 * The cache's prom-client metrics (`noa_cache_manager_*`), no-ops without a registry, and the
 * plain counters of `cache.stats()`, kept in every case. Hot paths check `enabled` before
 * taking timestamps.
 */
export class CacheMetrics {
  readonly enabled: boolean;
  /** The counters of `cache.stats()`, counted here so that they match the series below. */
  readonly counters = new CacheCounters();
  /** This cache's `cache` label (the `name` option), on every series. */
  readonly #name: string;
  readonly #requestLabels: Record<Tier, Record<RequestResult, RequestLabels>>;
  readonly #requests: CounterMetric<'cache' | 'tier' | 'result'>;
  readonly #staleServed: CounterMetric<'cache' | 'reason'>;
  readonly #factoryRuns: CounterMetric<'cache' | 'result'>;
  readonly #factoryRunsAbandoned: CounterMetric<'cache'>;
  readonly #errors: CounterMetric<'cache' | 'tier' | 'operation'>;
  readonly #degraded: CounterMetric<'cache' | 'operation' | 'kind'>;
  readonly #latency: HistogramMetric<'cache' | 'tier' | 'operation'>;
  readonly #evictions: CounterMetric<'cache' | 'tier' | 'reason'>;
  readonly #bytes: GaugeMetric<'cache' | 'tier'>;
  readonly #entries: GaugeMetric<'cache' | 'tier'>;
  readonly #bytesWritten: CounterMetric<'cache' | 'tier'>;
  readonly #bus: CounterMetric<'cache' | 'direction'>;
  readonly #lockWaits: CounterMetric<'cache' | 'result'>;
  readonly #tagMembersPruned: CounterMetric<'cache'>;
  readonly #breaker: GaugeMetric<'cache' | 'state'>;
  /**
   * This cache's shares of the gauges. Caches of one name sharing a registry share its series, so
   * each adds its own part (see GaugeShare): a `set` would report the last cache to write.
   */
  readonly #entriesShare: GaugeShare<'cache' | 'tier'>;
  readonly #bytesShare: GaugeShare<'cache' | 'tier'>;
  /** One per breaker state, from the first report on. */
  #breakerShares: Map<BreakerState, GaugeShare<'cache' | 'state'>> | undefined;
  /** After `close()`: reports change nothing (the cache took its share out). */
  #closed = false;
  /** The registry's `breaker_state` gauge object, whose scrapes run {@link followBreaker}'s readers. */
  readonly #breakerGauge: ScrapedGauge | undefined;
  /** This cache's breaker state, read at each scrape (see {@link followBreaker}), and its entry there. */
  #breakerStateNow: (() => BreakerState) | undefined;
  #follower: WeakRef<CacheMetrics> | undefined;

  /** @param name The cache's `name` option: the `cache` label of every series. */
  constructor(registry?: MetricsRegistry, name = 'cache') {
    // The option is typed by shape (see MetricsRegistry) and checked at construction.
    const factory = new MetricsFactory('cache_manager', registry as Registry | undefined);
    this.enabled = factory.enabled;
    this.#name = name;
    this.#requestLabels = requestLabelsOf(name);
    this.#requests = factory.counter('requests_total', 'Cache lookups by tier and result', [
      'cache',
      'tier',
      'result',
    ]);
    this.#staleServed = factory.counter('stale_served_total', 'Stale values served, by reason', [
      'cache',
      'reason',
    ]);
    this.#factoryRuns = factory.counter('factory_runs_total', 'Factory executions by result', [
      'cache',
      'result',
    ]);
    this.#factoryRunsAbandoned = factory.counter(
      'factory_runs_abandoned_total',
      'Factory runs the cache gave up on (hung past the lease with nobody waiting, or replaced), their ctx.signal aborted',
      ['cache'],
    );
    this.#errors = factory.counter('errors_total', 'Backend errors by tier and operation', [
      'cache',
      'tier',
      'operation',
    ]);
    this.#degraded = factory.counter(
      'degraded_operations_total',
      'Redis operations skipped or failed (served from L1), by kind (circuit_open, timeout, error, skipped)',
      ['cache', 'operation', 'kind'],
    );
    // Sub-50 µs buckets first: L1 lookups take well under a microsecond.
    this.#latency = factory.histogram(
      'operation_duration_seconds',
      'Operation latency by tier (L1: one lookup in 64 is timed; L2: every call sent, failed ones too)',
      ['cache', 'tier', 'operation'],
      [0.0000005, 0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, ...latencyBucketsSeconds],
    );
    this.#evictions = factory.counter('evictions_total', 'Entries removed from a tier, by reason', [
      'cache',
      'tier',
      'reason',
    ]);
    this.#bytes = factory.gauge(
      'stored_bytes',
      'Bytes held by L1 (summed over the caches of one name on a registry)',
      ['cache', 'tier'],
    );
    this.#entries = factory.gauge(
      'entries',
      'Entries held by L1 (summed over the caches of one name on a registry)',
      ['cache', 'tier'],
    );
    this.#bytesWritten = factory.counter('written_bytes_total', 'Encoded bytes written to L2', [
      'cache',
      'tier',
    ]);
    this.#bus = factory.counter('bus_messages_total', 'Invalidation bus messages', ['cache', 'direction']);
    this.#lockWaits = factory.counter('lock_waits_total', 'Waits for another instance computing a key', [
      'cache',
      'result',
    ]);
    this.#tagMembersPruned = factory.counter(
      'tag_members_pruned_total',
      'Tag set members removed because their value was gone (expired, evicted or deleted one by one), by the pruning of tagged writes',
      ['cache'],
    );
    // At 0 from the start, as a counter that rarely moves should be (a rate over it is 0, not absent).
    this.#tagMembersPruned.inc({ cache: name }, 0);
    this.#factoryRunsAbandoned.inc({ cache: name }, 0);
    this.#breaker = factory.gauge(
      'breaker_state',
      'Caches of one name whose Redis breaker is in each state (closed, open, half_open; 1 for the current state of one cache)',
      ['cache', 'state'],
    );
    this.#breakerGauge = scrapedGauge(registry, 'noa_cache_manager_breaker_state');
    this.#entriesShare = new GaugeShare(this.#entries, { cache: name, tier: 'l1' });
    this.#bytesShare = new GaugeShare(this.#bytes, { cache: name, tier: 'l1' });
  }

  request(tier: Tier, result: RequestResult): void {
    // No per-lookup allocation, with or without a registry: the arguments are constants at
    // every call site, so these branches fold once inlined.
    const counters = this.counters;
    if (tier === 'l1') {
      if (result === 'hit') counters.l1Hits += 1;
      else counters.l1Misses += 1;
    } else if (result === 'hit') counters.l2Hits += 1;
    else counters.l2Misses += 1;
    if (this.enabled) this.#requests.inc(this.#requestLabels[tier][result]);
  }

  staleServed(reason: 'factory_error' | 'soft_timeout' | 'hard_timeout' | 'lock_timeout'): void {
    const counters = this.counters;
    if (reason === 'factory_error') counters.staleFactoryError += 1;
    else if (reason === 'soft_timeout') counters.staleSoftTimeout += 1;
    else if (reason === 'hard_timeout') counters.staleHardTimeout += 1;
    else counters.staleLockTimeout += 1;
    this.#staleServed.inc({ cache: this.#name, reason });
  }

  factoryRun(result: 'ok' | 'error'): void {
    if (result === 'ok') this.counters.factoryOk += 1;
    else this.counters.factoryErrors += 1;
    this.#factoryRuns.inc({ cache: this.#name, result });
  }

  /** A factory run given up (see `HungRuns`): its signal aborted, its memory dropped. */
  factoryRunAbandoned(): void {
    this.#factoryRunsAbandoned.inc({ cache: this.#name });
  }

  error(tier: Tier, operation: string): void {
    if (tier === 'l2') this.counters.l2Errors += 1;
    this.#errors.inc({ cache: this.#name, tier, operation });
  }

  /**
   * A Redis operation not done: `skipped` is one not sent because an earlier one of the same
   * call failed (the later chunks of a `setMany`, see `sendWrites`).
   */
  degraded(operation: string, kind: 'circuit_open' | 'timeout' | 'error' | 'skipped'): void {
    this.counters.degraded += 1;
    if (kind === 'circuit_open') this.counters.breakerOpen += 1;
    else if (kind === 'timeout') this.counters.l2Timeouts += 1;
    this.#degraded.inc({ cache: this.#name, operation, kind });
  }

  latency(tier: Tier, operation: string, seconds: number): void {
    this.#latency.observe({ cache: this.#name, tier, operation }, seconds);
  }

  eviction(tier: Tier, reason: 'evicted' | 'expired' | 'too_large'): void {
    if (tier === 'l1') {
      if (reason === 'evicted') this.counters.evicted += 1;
      else if (reason === 'expired') this.counters.expired += 1;
      else this.counters.tooLarge += 1;
    }
    this.#evictions.inc({ cache: this.#name, tier, reason });
  }

  l1Size(entries: number, bytes: number): void {
    this.#entriesShare.set(entries);
    this.#bytesShare.set(bytes);
  }

  written(bytes: number): void {
    this.#bytesWritten.inc({ cache: this.#name, tier: 'l2' }, bytes);
  }

  bus(direction: 'sent' | 'received'): void {
    this.#bus.inc({ cache: this.#name, direction });
  }

  lockWait(result: 'value' | 'acquired' | 'stale' | 'timeout'): void {
    this.#lockWaits.inc({ cache: this.#name, result });
  }

  /** `count` dead members removed from a tag set by one prune (see `RedisTier`). */
  tagMembersPruned(count: number): void {
    if (count > 0) this.#tagMembersPruned.inc({ cache: this.#name }, count);
  }

  breakerState(state: BreakerState): void {
    if (this.#closed) return;
    if (this.#breakerShares === undefined) {
      // Every state's series exists from the first report on, at 0 while no cache is in it.
      const labels = (each: BreakerState) => ({ cache: this.#name, state: metricLabelValue(each) });
      for (const each of breakerStates) this.#breaker.inc(labels(each), 0);
      this.#breakerShares = new Map(
        breakerStates.map((each) => [each, new GaugeShare(this.#breaker, labels(each))]),
      );
    }
    for (const [each, share] of this.#breakerShares) share.set(each === state ? 1 : 0);
  }

  /**
   * Makes `breaker_state` read `state()` at every scrape, as `stats().l2` and `health()` do. Reported
   * only on the breaker's own changes, the gauge said `open` for as long as Redis stayed idle, while
   * the breaker (past `halfOpenAfterMs`) said `half-open`: cockatiel moves to half-open only when a
   * call comes, and the breaker's `state` reports it as soon as that call would be let through.
   */
  followBreaker(state: () => BreakerState): void {
    const gauge = this.#breakerGauge;
    if (gauge === undefined || this.#closed) return;
    let followers = breakerFollowers.get(gauge);
    if (followers === undefined) {
      const scraped = new Set<WeakRef<CacheMetrics>>();
      followers = scraped;
      breakerFollowers.set(gauge, scraped);
      // prom-client runs a metric's `collect` before reading its values, at every scrape.
      const ownCollect = gauge.collect;
      gauge.collect = function (this: unknown) {
        for (const follower of scraped) {
          const metrics = follower.deref();
          if (metrics === undefined) scraped.delete(follower);
          else metrics.#readBreaker();
        }
        return ownCollect?.call(this);
      };
    }
    this.#breakerStateNow = state;
    // Weakly held: a cache dropped without close() is not kept alive by the registry.
    this.#follower = new WeakRef(this);
    followers.add(this.#follower);
    this.#readBreaker();
  }

  #readBreaker(): void {
    if (this.#breakerStateNow !== undefined) this.breakerState(this.#breakerStateNow());
  }

  /** Takes this cache's share out of the gauges (its L1 size and breaker state); later reports are ignored. */
  close(): void {
    if (this.#follower !== undefined && this.#breakerGauge !== undefined)
      breakerFollowers.get(this.#breakerGauge)?.delete(this.#follower);
    this.#entriesShare.release();
    this.#bytesShare.release();
    for (const share of this.#breakerShares?.values() ?? []) share.release();
    this.#closed = true;
  }
}

const breakerStates: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/** The part of a prom-client metric a scrape runs first: its `collect` (a documented constructor option). */
interface ScrapedGauge {
  collect?: (() => unknown) | undefined;
}

/** The caches that follow their breaker, per `breaker_state` gauge object (one per registry). */
const breakerFollowers = new WeakMap<ScrapedGauge, Set<WeakRef<CacheMetrics>>>();

/** The metric `name` on `registry` (created by the factory just before), if it is an object. */
function scrapedGauge(registry: MetricsRegistry | undefined, name: string): ScrapedGauge | undefined {
  const metric = registry?.getSingleMetric(name);
  return typeof metric === 'object' && metric !== null ? (metric as ScrapedGauge) : undefined;
}
