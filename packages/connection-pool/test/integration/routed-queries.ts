import type { Registry } from 'prom-client';

/** Queries routed so far per target (`primary`, `replica0`…), from the cluster's metric. */
export async function routedQueries(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('noa_connection_pool_routed_queries_total')!.get();
  const counts: Record<string, number> = {};
  for (const { labels, value } of metric.values) {
    const target = String(labels.target);
    counts[target] = (counts[target] ?? 0) + value;
  }
  return counts;
}
