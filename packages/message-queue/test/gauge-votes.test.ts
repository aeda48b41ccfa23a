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

describe('queue_depth_stale: one vote per queue object on a shared registry', () => {
  it('is 0 while any queue object of the name counted fresh, and the last one released takes the depth series', async () => {
    const registry = new Registry();
    const first = createQueueMetrics(registry);
    first.depth.set({ queue: 'q', state: 'waiting' }, 3);
    const stale = () => series(registry, 'noa_message_queue_queue_depth_stale', 'q');
    const depth = () => series(registry, 'noa_message_queue_queue_depth_jobs', 'q');
    const a = first.depthStale('q');
    const b = createQueueMetrics(registry).depthStale('q');
    a.set(1);
    expect(await stale()).toEqual([1]);
    b.set(0);
    expect(await stale()).toEqual([0]);
    b.release();
    expect(await stale()).toEqual([1]);
    expect(await depth()).toEqual([3]);
    a.release();
    expect(await stale()).toEqual([]);
    expect(await depth()).toEqual([]);
  });
});
