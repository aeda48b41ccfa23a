import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AcquireResultLabel } from '../src/acquire-queue.js';
import type { CheckOutcome, DecisionSource } from '../src/index.js';
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
    const values = Object.keys(acquireResults).sort();
    expect(readmeLabelValues('noa_rate_limiter_acquire_wait_seconds', 'result').sort()).toEqual(values);
    const help = await helpOf('noa_rate_limiter_acquire_wait_seconds');
    const listed =
      help
        .match(/by result \(([^)]*)\)/)?.[1]
        ?.split(',')
        .map((value) => value.trim()) ?? [];
    expect(listed.sort()).toEqual(values);
  });

  it('noa_rate_limiter_checks_total: every outcome and source is documented', () => {
    expect(readmeLabelValues('noa_rate_limiter_checks_total', 'outcome').sort()).toEqual(
      Object.keys(outcomes).sort(),
    );
    expect(readmeLabelValues('noa_rate_limiter_checks_total', 'source').sort()).toEqual(
      Object.keys(sources).sort(),
    );
  });
});
