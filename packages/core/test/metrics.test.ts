import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ConfigError, GaugeShare, MetricsFactory, metricLabelValue } from '../src/index.js';

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

describe('GaugeShare', () => {
  it('adds up the shares of instances on one registry, and a released share leaves it', async () => {
    const registry = new Registry();
    const gauge = new MetricsFactory('share', registry).gauge('active', 'instances active', ['kind']);
    const sample = async () =>
      Number(/noa_share_active\{kind="a"\} (\S+)/.exec(await registry.metrics())?.[1] ?? Number.NaN);
    const first = new GaugeShare(gauge, { kind: 'a' });
    const second = new GaugeShare(gauge, { kind: 'a' });
    first.set(3);
    second.set(2);
    expect(await sample()).toBe(5);
    first.set(1); // a later report by one instance replaces only its own part
    expect(await sample()).toBe(3);
    second.release();
    second.set(7); // ignored once released
    expect(await sample()).toBe(1);
    first.release();
    first.release();
    expect(await sample()).toBe(0);
  });
});

describe('GaugeShare with a value that is not finite', () => {
  it('ignores it, so the shared gauge is not NaN from then on', async () => {
    const registry = new Registry();
    const gauge = new MetricsFactory('nan', registry).gauge('size', 'size');
    const share = new GaugeShare(gauge);
    const other = new GaugeShare(gauge);
    other.set(2);
    share.set(Number.NaN);
    share.set(Number.POSITIVE_INFINITY);
    share.set(3);
    expect(await registry.metrics()).toContain('noa_nan_size 5');
    share.release();
    expect(await registry.metrics()).toContain('noa_nan_size 2');
  });
});

describe('MetricsFactory with a metric already on the registry under another shape', () => {
  // Found at construction, naming the metric, rather than on the first observation of a hot path.
  it('throws a ConfigError for other label names', () => {
    const registry = new Registry();
    new MetricsFactory('demo', registry).counter('x_total', 'X', ['result']);
    expect(() => new MetricsFactory('demo', registry).counter('x_total', 'X', ['store'])).toThrow(
      ConfigError,
    );
    expect(() => new MetricsFactory('demo', registry).counter('x_total', 'X', ['result'])).not.toThrow();
  });

  it('throws a ConfigError for another metric type', () => {
    const registry = new Registry();
    new MetricsFactory('demo', registry).counter('y', 'Y');
    expect(() => new MetricsFactory('demo', registry).gauge('y', 'Y')).toThrow(/noa_demo_y/);
    expect(() => new MetricsFactory('demo', registry).histogram('y', 'Y')).toThrow(ConfigError);
  });
});

describe('MetricsFactory with a registry that is not a prom-client Registry', () => {
  it('throws a ConfigError naming the registry option at construction', () => {
    const notARegistry = { metrics: () => '' } as unknown as Registry;
    expect(() => new MetricsFactory('demo', notARegistry)).toThrow(ConfigError);
    expect(() => new MetricsFactory('demo', notARegistry)).toThrow(/registry/);
  });
});

describe('metricLabelValue', () => {
  it('spells enumerated values snake_case, whatever their API spelling', () => {
    expect(metricLabelValue('circuit-open')).toBe('circuit_open');
    expect(metricLabelValue('half-open')).toBe('half_open');
    expect(metricLabelValue('poolClosed')).toBe('pool_closed');
    expect(metricLabelValue('checkout-connectionError')).toBe('checkout_connection_error');
    expect(metricLabelValue('read-your-writes')).toBe('read_your_writes');
  });

  it('leaves snake_case values as they are, also when asked again', () => {
    for (const value of ['circuit_open', 'l1', 'get_many', 'timeout', 'circuit_open'])
      expect(metricLabelValue(value)).toBe(value);
  });
});
