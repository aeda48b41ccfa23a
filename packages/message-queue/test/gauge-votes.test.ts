import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createQueueMetrics } from '../src/metrics.js';

async function series(registry: Registry, name: string, queue: string): Promise<number[]> {
  const metric = await registry.getSingleMetric(name)!.get();
  return metric.values.filter((value) => value.labels.queue === queue).map((value) => value.value);
}

describe('backend_up: one vote per worker on a shared registry', () => {
  it('shows the minimum of the votes that are known, none while none is, and drops released ones', async () => {
    const registry = new Registry();
    const up = () => series(registry, 'noa_message_queue_backend_up', 'q');
    const first = createQueueMetrics(registry).backendUp('q');
    const second = createQueueMetrics(registry).backendUp('q');
    const other = createQueueMetrics(registry).backendUp('other');
    expect(await up()).toEqual([]);
    first.set(1);
    expect(await up()).toEqual([1]);
    second.set(0);
    first.set(1);
    expect(await up()).toEqual([0]);
    other.set(1);
    expect(await up()).toEqual([0]);
    second.release();
    second.set(0);
    expect(await up()).toEqual([1]);
    first.set(undefined);
    expect(await up()).toEqual([]);
    first.set(0);
    expect(await up()).toEqual([0]);
    first.release();
    expect(await up()).toEqual([]);
    expect(await series(registry, 'noa_message_queue_backend_up', 'other')).toEqual([1]);
  });

  it('is a no-op without a registry', () => {
    const vote = createQueueMetrics().backendUp('q');
    vote.set(0);
    vote.release();
  });
});
