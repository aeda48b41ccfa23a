import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MetricsFactory } from '../src/index.js';

describe('MetricsFactory', () => {
  it('registers prefixed metrics on the given registry', async () => {
    const registry = new Registry();
    const metrics = new MetricsFactory('demo', registry);
    metrics.counter('checks_total', 'Checks', ['result']).inc({ result: 'allowed' }, 2);
    metrics.histogram('check_duration_seconds', 'Latency', ['store']).observe({ store: 'memory' }, 0.001);
    metrics.gauge('breaker_state', 'State').set({}, 1);
    const text = await registry.metrics();
    expect(text).toContain('noa_demo_checks_total{result="allowed"} 2');
    expect(text).toContain('noa_demo_check_duration_seconds_count{store="memory"} 1');
    expect(text).toContain('noa_demo_breaker_state 1');
  });

  it('shares metrics between two instances on one registry', async () => {
    const registry = new Registry();
    new MetricsFactory('demo', registry).counter('x_total', 'X').inc();
    new MetricsFactory('demo', registry).counter('x_total', 'X').inc();
    expect(await registry.metrics()).toContain('noa_demo_x_total 2');
  });

  it('is a no-op without a registry', () => {
    const metrics = new MetricsFactory('demo');
    expect(metrics.enabled).toBe(false);
    expect(() => metrics.counter('x_total', 'X').inc()).not.toThrow();
  });
});
