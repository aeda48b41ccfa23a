import type { Registry } from 'prom-client';
import type { CacheStats } from '../../src/index.js';

/** The sum of a metric's samples whose labels include `labels` (0 when there are none). */
export async function total(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((candidate) => candidate.name === name);
  if (!metric) return 0;
  let sum = 0;
  for (const sample of metric.values) {
    const sampleLabels = sample.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([label, value]) => sampleLabels[label] === value)) sum += sample.value;
  }
  return sum;
}

const metric = (what: string) => `noa_cache_manager_${what}`;

/** Every counter of `stats()` next to what the prom-client registry says for it. */
export async function fromRegistry(registry: Registry): Promise<Omit<CacheStats, 'l1' | 'l2'>> {
  const requests = metric('requests_total');
  const l1Hits = await total(registry, requests, { tier: 'l1', result: 'hit' });
  const l1Lookups = await total(registry, requests, { tier: 'l1' });
  const l2Hits = await total(registry, requests, { tier: 'l2', result: 'hit' });
  const stale = metric('stale_served_total');
  const degraded = metric('degraded_operations_total');
  return {
    hits: { l1: l1Hits, l2: l2Hits },
    misses: l1Lookups - l1Hits - l2Hits,
    hitRate: l1Lookups === 0 ? 0 : (l1Hits + l2Hits) / l1Lookups,
    staleServed: {
      factory_error: await total(registry, stale, { reason: 'factory_error' }),
      soft_timeout: await total(registry, stale, { reason: 'soft_timeout' }),
      hard_timeout: await total(registry, stale, { reason: 'hard_timeout' }),
      lock_timeout: await total(registry, stale, { reason: 'lock_timeout' }),
    },
    factoryRuns: await total(registry, metric('factory_runs_total')),
    factoryErrors: await total(registry, metric('factory_runs_total'), { result: 'error' }),
    l2Errors: await total(registry, metric('errors_total'), { tier: 'l2' }),
    l2Timeouts: await total(registry, degraded, { kind: 'timeout' }),
    degraded: {
      total: await total(registry, degraded),
      breakerOpen: await total(registry, degraded, { kind: 'circuit_open' }),
    },
    evictions: {
      evicted: await total(registry, metric('evictions_total'), { tier: 'l1', reason: 'evicted' }),
      expired: await total(registry, metric('evictions_total'), { tier: 'l1', reason: 'expired' }),
      tooLarge: await total(registry, metric('evictions_total'), { tier: 'l1', reason: 'too_large' }),
    },
  };
}

export function counters(stats: CacheStats): Omit<CacheStats, 'l1' | 'l2'> {
  const { l1: _sizes, l2: _state, ...rest } = stats;
  return rest;
}
