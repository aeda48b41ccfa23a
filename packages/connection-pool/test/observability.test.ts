import { readFileSync } from 'node:fs';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Pool } from '../src/index.js';
import { createMongoPool } from '../src/mongo.js';
import { createPgPool } from '../src/pg.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The `errors_total` kinds the README's metrics table lists. */
function readmeErrorKinds(): string[] {
  const row = readme.split('\n').find((line) => line.includes('`noa_connection_pool_errors_total`'));
  if (row === undefined) throw new Error('no errors_total row in the README');
  // The kinds listed after `kind (`, not the driver reasons spelled out in parentheses after `checkout_<reason>`.
  const listed = row.slice(row.indexOf('kind (')).replace(/<reason>` \([^)]*\)/, '<reason>`');
  return [...listed.matchAll(/`([a-z_]+)(?:<reason>)?`/g)].map((match) => match[1]!.replace(/_$/, ''));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('metric help texts', () => {
  it('follow the other packages (no trailing period), and errors_total lists the README kinds', async () => {
    const registry = new Registry();
    const db = createPgPool({
      primary: 'postgres://noa:noa@127.0.0.1:1/noa',
      replicas: ['postgres://noa:noa@127.0.0.1:1/noa'],
      registry,
    });
    try {
      const metrics = await registry.getMetricsAsJSON();
      expect(metrics.length).toBeGreaterThan(10);
      for (const metric of metrics) expect(metric.help, metric.name).not.toMatch(/\.$/);
      const errors = metrics.find((metric) => metric.name === 'noa_connection_pool_errors_total')!;
      const kinds = readmeErrorKinds();
      expect(kinds).toContain('query_timeout');
      expect(kinds).toContain('checkout');
      for (const kind of kinds) expect(errors.help).toContain(kind);
    } finally {
      await db.close();
    }
  });
});

describe('label names and values (docs/decisions/012)', () => {
  it('a SQL cluster and a Mongo pool share one registry: routed_queries_total is labelled cluster in both', async () => {
    const registry = new Registry();
    const db = createPgPool({ primary: 'postgres://noa:noa@127.0.0.1:1/noa', registry });
    // It threw a ConfigError here: the Mongo pool registered the metric with a `pool` label.
    const mongo = createMongoPool({ url: 'mongodb://127.0.0.1:1/x', name: 'docs', registry });
    try {
      // Not connected (no server in unit tests): readDb counts its routing, then throws.
      const read = (options?: { session: string }) =>
        expect(() => mongo.readDb('x', options)).toThrow(/connect\(\)/);
      read();
      read({ session: 's' });
      mongo.noteWrite('s');
      read({ session: 's' });
      const text = await registry.metrics();
      expect(text).toContain(
        'noa_connection_pool_routed_queries_total{cluster="docs",target="secondary_preferred",reason="read"} 2',
      );
      expect(text).toContain(
        'noa_connection_pool_routed_queries_total{cluster="docs",target="primary",reason="read_your_writes"} 1',
      );
    } finally {
      await Promise.all([db.close(), mongo.close()]);
    }
  });

  it('error kinds are snake_case, a driver reason included', async () => {
    const registry = new Registry();
    const pool = new Pool(
      {
        create: async () => {
          throw new Error('connect ECONNREFUSED');
        },
        destroy: async () => {},
      },
      { name: 'p', registry, acquireTimeoutMs: 50 },
    );
    const { poolMetrics } = await import('../src/metrics.js');
    poolMetrics(registry, 'p').errors.inc({ kind: 'checkout-connectionError' });
    await pool.acquire().then(
      () => {},
      () => {},
    );
    const text = await registry.metrics();
    expect(text).toContain('noa_connection_pool_errors_total{pool="p",kind="checkout_connection_error"} 1');
    expect(text).toMatch(/noa_connection_pool_errors_total\{pool="p",kind="create"\} [1-9]/);
    expect(text).not.toMatch(/kind="[^"]*[-A-Z]/);
    await pool.close();
  });
});

describe('log lines', () => {
  it("carry component: 'connection-pool', from the pool and from the cluster", async () => {
    const logger = recordingLogger();
    const lines = logger.entries;
    const pool = new Pool(
      {
        create: async () => {
          throw new Error('connect ECONNREFUSED');
        },
        destroy: async () => {},
      },
      { logger, name: 'generic' },
    );
    await pool.acquire().catch(() => {});
    await pool.close();
    const db = createPgPool({
      primary: 'postgres://noa:noa@127.0.0.1:1/noa',
      replicas: ['postgres://noa:noa@127.0.0.1:1/noa'],
      logger,
    });
    try {
      // The first lag probe runs at construction and fails at once (connection refused).
      for (
        let tries = 0;
        tries < 200 && !lines.some((line) => line.message === 'replica left rotation');
        tries++
      )
        await sleep(10);
    } finally {
      await db.close();
    }
    const messages = lines.map((line) => line.message);
    expect(messages).toContain('could not open a connection');
    expect(messages).toContain('replica left rotation');
    for (const line of lines) expect(line.fields.component, line.message).toBe('connection-pool');
  });
});
