import { readFileSync } from 'node:fs';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { type Metric, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMysqlPool } from '../../src/mysql.js';
import { createPgPool } from '../../src/pg.js';
import { createRedisPool } from '../../src/redis.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The README's metrics table: each metric name with the label names its row lists. */
function readmeMetrics(): Map<string, string[]> {
  const rows = readme.split('\n').filter((line) => line.startsWith('| `noa_connection_pool_'));
  const metrics = new Map<string, string[]>();
  for (const row of rows) {
    const [, nameCell, , labelCell] = row.split('|').map((cell) => cell.trim());
    // Label values are spelled out in parentheses: only the names before them count.
    let labels = labelCell!;
    while (/\([^()]*\)/.test(labels)) labels = labels.replace(/\([^()]*\)/g, '');
    const names = labels.split(',').map((label) => label.trim());
    const [first, second] = [...nameCell!.matchAll(/`([a-z_…]+)`/g)].map((match) => match[1]!);
    metrics.set(first!, names);
    // `…_connections_created_total` / `…_destroyed_total`: the second shares the first's stem.
    if (second !== undefined) metrics.set(first!.replace(/created_total$/, second.replace('…_', '')), names);
  }
  return metrics;
}

const pgUrl = serviceUrl('postgres');
const mysqlUrl = serviceUrl('mysql');
const redisUrl = serviceUrl('redis');
const down = (
  await Promise.all(
    (['postgres', 'mysql', 'redis'] as const).map(async (service) =>
      (await isReachable(service)) ? [] : [service],
    ),
  )
).flat();
const skip = down.length > 0 ? `skipped: not reachable: ${down.join(', ')}` : undefined;
if (skip) console.log(skip);

describe.skipIf(skip !== undefined)('README metrics table, on one injected registry', () => {
  it('a PgPool, a MysqlPool and a RedisPool share one prom-client Registry: every metric of the table exists with its labels, and each pool has its own series', async () => {
    const registry = new Registry();
    const name = uniqueName('metrics');
    const pg = createPgPool({ name, primary: pgUrl, replicas: [pgUrl], registry, healthCheckIntervalMs: 50 });
    const mysql = createMysqlPool({ name: `${name}-mysql`, primary: mysqlUrl, registry });
    const redis = createRedisPool({ name: `${name}-redis`, redis: redisUrl, registry });
    try {
      await pg.query('SELECT 1');
      await pg.query('/* noa:primary */ SELECT 1');
      await mysql.query('SELECT 1');
      await redis.use((client) => client.ping());
      await pg.checkHealth({ maxAgeMs: 0 });

      const table = readmeMetrics();
      expect(table.size).toBe(13);
      for (const [metricName, labels] of table) {
        const metric = registry.getSingleMetric(metricName) as
          | (Metric & { labelNames: string[] })
          | undefined;
        expect(metric, metricName).toBeDefined();
        expect([...metric!.labelNames].sort(), metricName).toEqual([...labels].sort());
      }
      // Exported names are exactly the table's.
      expect(
        registry
          .getMetricsAsArray()
          .map((metric) => (metric as unknown as { name: string }).name)
          .sort(),
      ).toEqual([...table.keys()].sort());

      const text = await registry.metrics();
      for (const pool of [`${name}:primary`, `${name}:replica0`, `${name}-mysql:primary`, `${name}-redis`]) {
        expect(text).toContain(`noa_connection_pool_active_connections{pool="${pool}"}`);
        expect(text).toContain(`noa_connection_pool_connections_created_total{pool="${pool}"}`);
      }
      expect(text).toContain(
        `noa_connection_pool_routed_queries_total{cluster="${name}",target="primary",reason="hint"} 1`,
      );
      expect(text).toMatch(
        new RegExp(
          `noa_connection_pool_routed_queries_total\\{cluster="${name}-mysql",target="primary",reason="[a-z_]+"\\} 1`,
        ),
      );
      expect(text).toContain(`noa_connection_pool_replica_in_rotation{cluster="${name}",replica="replica0"}`);
    } finally {
      await Promise.all([pg.close(), mysql.close(), redis.close()]);
    }
  });

  it('two RedisPools with the default name on one registry: the occupancy gauges add up, and a closed pool takes its share out', async () => {
    const registry = new Registry();
    const idle = async () => {
      const text = await registry.metrics();
      const line = text
        .split('\n')
        .find((row) => row.startsWith('noa_connection_pool_idle_connections{pool="redis"} '));
      return Number(line?.split(' ')[1]);
    };
    const first = createRedisPool({ redis: redisUrl, registry, idleTimeoutMs: 60_000 });
    const second = createRedisPool({ redis: redisUrl, registry, idleTimeoutMs: 60_000 });
    try {
      const held = await Promise.all([first.acquire(), first.acquire()]);
      for (const client of held) first.release(client);
      expect(await idle()).toBe(2);
      second.release(await second.acquire());
      expect(await idle()).toBe(3);
      await first.close();
      expect(await idle()).toBe(1);
    } finally {
      await first.close();
      await second.close();
    }
    expect(await idle()).toBe(0);
  });
});
