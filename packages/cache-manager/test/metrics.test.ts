import { readFileSync } from 'node:fs';
import { breakerOptionsSchema } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Cache, ConfigError } from '../src/index.js';
import { RedisGuard } from '../src/l2/redis-guard.js';
import { CacheMetrics } from '../src/metrics.js';

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
    const entries = 'noa_cache_manager_entries{cache="cache",tier="l1"}';
    const bytes = 'noa_cache_manager_stored_bytes{cache="cache",tier="l1"}';
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

  it('two named caches on one registry are separate series; caches of one name add up', async () => {
    const registry = new Registry();
    const sessions = new Cache({ registry, name: 'sessions' });
    const catalogue = new Cache({ registry, name: 'catalogue' });
    const catalogue2 = new Cache({ registry, name: 'catalogue' });
    await sessions.set('a', 'x');
    await sessions.get('a');
    await catalogue.set('b', 'x');
    await catalogue2.set('c', 'x');
    await catalogue.get('nope');
    expect(
      await sample(registry, 'noa_cache_manager_requests_total{cache="sessions",tier="l1",result="hit"}'),
    ).toBe(1);
    expect(
      await sample(registry, 'noa_cache_manager_requests_total{cache="catalogue",tier="l1",result="hit"}'),
    ).toBe(0);
    expect(
      await sample(registry, 'noa_cache_manager_requests_total{cache="catalogue",tier="l1",result="miss"}'),
    ).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_entries{cache="sessions",tier="l1"}')).toBe(1);
    expect(await sample(registry, 'noa_cache_manager_entries{cache="catalogue",tier="l1"}')).toBe(2);
    await catalogue2.close();
    expect(await sample(registry, 'noa_cache_manager_entries{cache="catalogue",tier="l1"}')).toBe(1);
    await Promise.all([sessions.close(), catalogue.close()]);
  });

  it('breaker states and degraded kinds are snake_case, under the label names of decision 012', async () => {
    const registry = new Registry();
    const metrics = new CacheMetrics(registry, 'c');
    metrics.breakerState('half-open');
    metrics.degraded('get', 'circuit_open');
    const text = await registry.metrics();
    expect(text).toContain('noa_cache_manager_breaker_state{cache="c",state="half_open"} 1');
    expect(text).toContain('noa_cache_manager_breaker_state{cache="c",state="closed"} 0');
    expect(text).toContain(
      'noa_cache_manager_degraded_operations_total{cache="c",operation="get",kind="circuit_open"} 1',
    );
    expect(text).not.toMatch(/half-open|reason="circuit_open"/);
  });

  it('breaker_state reads what stats() and health() say: half_open once an idle open breaker has waited halfOpenAfterMs', async () => {
    const registry = new Registry();
    const metrics = new CacheMetrics(registry, 'c');
    const guard = new RedisGuard({
      operationTimeoutMs: 1_000,
      breaker: breakerOptionsSchema.parse({ consecutiveFailures: 1, halfOpenAfterMs: 20 }),
      onBackendError: 'degrade',
      metrics,
      logger: recordingLogger(),
      logIntervalMs: 60_000,
    });
    const state = async (name: string) =>
      sample(registry, `noa_cache_manager_breaker_state{cache="c",state="${name}"}`);
    await guard.run('get', undefined, () => Promise.reject(new Error('connection refused')));
    expect(guard.state).toBe('open');
    expect([await state('open'), await state('half_open')]).toEqual([1, 0]);
    // No call comes: Redis is idle. The breaker lets the next call through, as stats() says.
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(guard.state).toBe('half-open');
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([0, 0, 1]);
    // The probe succeeds: closed everywhere.
    await guard.run('get', undefined, () => Promise.resolve('ok'));
    expect(guard.state).toBe('closed');
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([1, 0, 0]);
    metrics.close();
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([0, 0, 0]);
  });

  it('breaker_state of two caches on one registry: each counted in its own state at every scrape', async () => {
    const registry = new Registry();
    const states: Array<'closed' | 'open' | 'half-open'> = ['half-open', 'closed'];
    const first = new CacheMetrics(registry, 'c');
    const second = new CacheMetrics(registry, 'c');
    first.breakerState('open');
    second.breakerState('closed');
    first.followBreaker(() => states[0]!);
    second.followBreaker(() => states[1]!);
    const state = async (name: string) =>
      sample(registry, `noa_cache_manager_breaker_state{cache="c",state="${name}"}`);
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([1, 0, 1]);
    states[1] = 'open';
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([0, 1, 1]);
    first.close();
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([0, 1, 0]);
    second.close();
    expect([await state('closed'), await state('open'), await state('half_open')]).toEqual([0, 0, 0]);
  });

  it.each(['', 3])('refuses name %j, naming the field', (name) => {
    expect(() => new Cache({ name: name as string })).toThrow(ConfigError);
    expect(() => new Cache({ name: name as string })).toThrow(/name/);
  });
});

describe('logIntervalMs', () => {
  /** A guard whose every Redis call fails, and the failure warnings it logged. */
  async function failures(logIntervalMs: number, calls: number): Promise<number> {
    const logger = recordingLogger();
    const guard = new RedisGuard({
      operationTimeoutMs: 1_000,
      breaker: breakerOptionsSchema.parse({ consecutiveFailures: 1_000_000 }),
      onBackendError: 'degrade',
      metrics: new CacheMetrics(),
      logger,
      logIntervalMs,
    });
    for (let call = 0; call < calls; call += 1) {
      await guard.run('get', undefined, () => Promise.reject(new Error('connection refused')));
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    return logger.entriesAt('warn').length;
  }

  it('sets the interval of the Redis failure warnings (one per interval, the others held back)', async () => {
    expect(await failures(1, 5)).toBe(5);
    expect(await failures(60_000, 5)).toBe(1);
  });

  it.each([0, -5, 1.5, '1s'])('refuses %j, naming the field', (value) => {
    expect(() => new Cache({ logIntervalMs: value as number })).toThrow(ConfigError);
    expect(() => new Cache({ logIntervalMs: value as number })).toThrow(/logIntervalMs/);
  });
});
