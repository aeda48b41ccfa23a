import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Cache } from '../src/index.js';

/** The value of one sample line (`name{labels} value`), 0 when the series does not exist yet. */
async function sample(registry: Registry, series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** The README's metrics table: name → type and label names. */
function readmeMetrics(): Map<string, { type: string; labels: string[] }> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(
    readme.indexOf('\n## Metrics\n'),
    readme.indexOf('\n## Stats without prom-client'),
  );
  const metrics = new Map<string, { type: string; labels: string[] }>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const name = /^`(noa_cache_manager_[a-z_]+)`$/.exec(cells[1] ?? '')?.[1];
    if (name === undefined) continue;
    // Label names are the backticked words of the labels cell; values are in parentheses.
    const labels = [...(cells[3] ?? '').replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map(
      (match) => match[1]!,
    );
    metrics.set(name, { type: cells[2]!, labels });
  }
  return metrics;
}

describe('metrics', () => {
  it('are the ones the README names, with its types and label names', async () => {
    const registry = new Registry();
    const cache = new Cache({ registry });
    const documented = readmeMetrics();
    const registered = new Map(
      (await registry.getMetricsAsJSON())
        .filter((metric) => metric.name.startsWith('noa_cache_manager_'))
        .map((metric) => {
          const labels = (registry.getSingleMetric(metric.name) as unknown as { labelNames: string[] })
            .labelNames;
          return [metric.name, { type: String(metric.type), labels: [...labels] }] as const;
        }),
    );
    expect([...registered.keys()].sort()).toEqual([...documented.keys()].sort());
    for (const [name, { type, labels }] of registered) {
      expect(documented.get(name), name).toEqual({ type, labels });
    }
    await cache.close();
  });

  it('two caches on one registry add up their L1 sizes, and a closed cache leaves the sum', async () => {
    const registry = new Registry();
    const first = new Cache({ registry });
    const second = new Cache({ registry });
    await first.setMany([
      { key: 'a', value: 'x' },
      { key: 'b', value: 'x' },
      { key: 'c', value: 'x' },
    ]);
    await second.set('d', 'x');
    const entries = 'noa_cache_manager_entries{tier="l1"}';
    const bytes = 'noa_cache_manager_stored_bytes{tier="l1"}';
    expect(await sample(registry, entries)).toBe(4);
    expect(await sample(registry, bytes)).toBe(first.stats().l1.bytes + second.stats().l1.bytes);
    await second.delete('d');
    expect(await sample(registry, entries)).toBe(3);
    await second.set('e', 'x');
    await second.close();
    expect(await sample(registry, entries)).toBe(3);
    expect(await sample(registry, bytes)).toBe(first.stats().l1.bytes);
    await first.close();
    expect(await sample(registry, entries)).toBe(0);
  });
});
