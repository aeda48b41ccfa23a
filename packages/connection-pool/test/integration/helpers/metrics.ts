import type { Registry } from 'prom-client';

/** The value of the sample `series` (name and labels, as exposed) in `registry`, or 0 when it does not exist. */
export async function sampleOf(registry: Registry, series: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((row) => row.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The counters of one pool (`<name>:<server>`) that tell how its connections were given back and closed. */
export async function giveBackCounters(
  registry: Registry,
  pool: string,
): Promise<{ created: number; destroyed: number; resetErrors: number; releasedInTransaction: number }> {
  const of = (metric: string, labels = '') =>
    sampleOf(registry, `noa_connection_pool_${metric}{pool="${pool}"${labels}}`);
  return {
    created: await of('connections_created_total'),
    destroyed: await of('connections_destroyed_total'),
    resetErrors: await of('errors_total', ',kind="reset"'),
    releasedInTransaction: await of('released_in_transaction_total'),
  };
}
