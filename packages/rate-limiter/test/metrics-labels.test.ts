import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { metricLabelValue } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AcquireResultLabel } from '../src/acquire-queue.js';
import type { CheckOutcome, DecisionSource } from '../src/index.js';
import { ConfigError, createRateLimiter } from '../src/index.js';
import { createLimiterMetrics } from '../src/limiter-metrics.js';

// Records over the label unions: a value added to a union without being listed here fails typecheck.
const acquireResults: Record<AcquireResultLabel, true> = {
  acquired: true,
  closed: true,
  timeout: true,
  aborted: true,
  'queue-full': true,
  denied: true,
  blocked: true,
  limited: true,
  'exceeds-capacity': true,
  unavailable: true,
};
const outcomes: Record<CheckOutcome, true> = {
  allowed: true,
  limited: true,
  blocked: true,
  denied: true,
  allowlisted: true,
  unlimited: true,
  'exceeds-capacity': true,
};
const sources: Record<DecisionSource, true> = {
  store: true,
  'local-cache': true,
  fallback: true,
  'fail-mode': true,
  lists: true,
};

const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');

/** The values listed in parentheses after `label` in the README's metrics row of `metric`. */
function readmeLabelValues(metric: string, label: string): string[] {
  const row = readme.split('\n').find((line) => line.startsWith(`| \`${metric}\``));
  const listed = row?.match(new RegExp(`\`${label}\` \\(([^)]*)\\)`))?.[1];
  return (listed ?? '').split(',').map((value) => value.trim());
}

async function helpOf(metric: string): Promise<string> {
  const registry = new Registry();
  createLimiterMetrics(registry);
  const found = (await registry.getMetricsAsJSON()).find((one) => one.name === metric);
  return found?.help ?? '';
}

describe('metric label values: code, README and help text agree', () => {
  it('noa_rate_limiter_acquire_wait_seconds: every result acquire() records is documented', async () => {
    const values = Object.keys(acquireResults).map(metricLabelValue).sort();
    expect(readmeLabelValues('noa_rate_limiter_acquire_wait_seconds', 'result').sort()).toEqual(values);
    const help = await helpOf('noa_rate_limiter_acquire_wait_seconds');
    const listed =
      help
        .match(/by result \(([^)]*)\)/)?.[1]
        ?.split(',')
        .map((value) => value.trim()) ?? [];
    expect(listed.sort()).toEqual(values);
  });

  it('noa_rate_limiter_checks_total: every outcome (label result) and source is documented', () => {
    expect(readmeLabelValues('noa_rate_limiter_checks_total', 'result').sort()).toEqual(
      Object.keys(outcomes).map(metricLabelValue).sort(),
    );
    expect(readmeLabelValues('noa_rate_limiter_checks_total', 'source').sort()).toEqual(
      Object.keys(sources).map(metricLabelValue).sort(),
    );
  });

  it('every metric is labelled limiter, and every enumerated value is snake_case (docs/decisions/012)', async () => {
    const registry = new Registry();
    createLimiterMetrics(registry);
    for (const metric of await registry.getMetricsAsJSON()) {
      const labelNames = (registry.getSingleMetric(metric.name) as unknown as { labelNames: string[] })
        .labelNames;
      expect(labelNames[0], metric.name).toBe('limiter');
      for (const name of labelNames) expect(name).toMatch(/^[a-z][a-z0-9_]*$/);
    }
    const documented = readme
      .split('\n')
      .filter((line) => line.startsWith('| `noa_rate_limiter_'))
      .flatMap((line) =>
        [...line.matchAll(/`[a-z_]+` \(([^)]*)\)/g)].flatMap((match) => match[1]!.split(',')),
      )
      .map((value) => value.trim().split(' ')[0]!.replace(/[;:]$/, ''));
    expect(documented.length).toBeGreaterThan(20);
    for (const value of documented) expect(value).toMatch(/^[a-z][a-z0-9_]*$/);
  });
});

describe('the limiter label', () => {
  it('two named limiters on one registry are separate series; limiters of one name add up', async () => {
    const registry = new Registry();
    const limits = [{ limit: 1, windowMs: 60_000 }];
    const login = createRateLimiter({ name: 'login', prefix: 'login', limits, registry });
    const api = createRateLimiter({ name: 'api', prefix: 'api', limits, registry });
    const api2 = createRateLimiter({ name: 'api', prefix: 'api2', limits, registry });
    await login.check('k');
    await login.check('k');
    await api.check('k');
    await api2.check('k');
    const text = await registry.metrics();
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="login",result="allowed",source="store"} 1',
    );
    expect(text).toContain(
      'noa_rate_limiter_checks_total{limiter="login",result="limited",source="store"} 1',
    );
    expect(text).toContain('noa_rate_limiter_checks_total{limiter="api",result="allowed",source="store"} 2');
    expect(text).not.toContain('result="limited",source="store"} 2');
    // Every limiter's gauges exist from the start, at 0.
    expect(text).toContain('noa_rate_limiter_fallback_active{limiter="login"} 0');
    expect(text).toContain('noa_rate_limiter_acquire_waiters{limiter="api"} 0');
    await Promise.all([login.close(), api.close(), api2.close()]);
  });

  it('a limiter without a name is labelled limiter="limiter"', async () => {
    const registry = new Registry();
    const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }], registry });
    await limiter.check('k');
    expect(await registry.metrics()).toContain(
      'noa_rate_limiter_checks_total{limiter="limiter",result="allowed",source="store"} 1',
    );
    await limiter.close();
  });

  it.each(['', 7])('refuses name %j, naming the field', (name) => {
    const create = () => createRateLimiter({ limits: [{ limit: 1, windowMs: 1_000 }], name: name as string });
    expect(create).toThrow(ConfigError);
    expect(create).toThrow(/name/);
  });
});
