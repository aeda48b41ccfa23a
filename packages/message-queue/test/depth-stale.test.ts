import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue } from '../src/index.js';

describe('queue_depth_jobs while the backend does not answer', () => {
  it('waits depthTimeoutMs once, then answers at once from the last values marked stale, with one count in flight', async () => {
    const registry = new Registry();
    const provider = new MemoryProvider();
    let now = 1_000_000;
    const clock = { now: () => now };
    const queue = new Queue({ name: 'stale', provider, registry, clock, depthTimeoutMs: 2_000 });
    const gauge = async (name: string, state?: string) => {
      const metric = await registry.getSingleMetric(name)!.get();
      return metric.values.find(
        (value) => value.labels.queue === 'stale' && (state === undefined || value.labels.state === state),
      )?.value;
    };
    await queue.add('a', null);
    expect(await gauge('noa_message_queue_queue_depth_jobs', 'waiting')).toBe(1);
    expect(await gauge('noa_message_queue_queue_depth_stale')).toBe(0);

    const counts = provider.counts.bind(provider);
    let calls = 0;
    let answer: () => void = () => {};
    provider.counts = (name) => {
      calls += 1;
      return new Promise((resolve) => {
        answer = () => resolve(counts(name));
      });
    };
    await queue.add('b', null);
    now += 1_001;
    let started = performance.now();
    await registry.metrics();
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_500);
    for (let scrape = 0; scrape < 3; scrape += 1) {
      now += 1_001;
      started = performance.now();
      await registry.metrics();
      expect(performance.now() - started).toBeLessThan(1_000);
    }
    expect(calls).toBe(1);
    expect(await gauge('noa_message_queue_queue_depth_jobs', 'waiting')).toBe(1);
    expect(await gauge('noa_message_queue_queue_depth_stale')).toBe(1);

    // The late count lands: fresh values, no longer stale.
    answer();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await gauge('noa_message_queue_queue_depth_jobs', 'waiting')).toBe(2);
    expect(await gauge('noa_message_queue_queue_depth_stale')).toBe(0);
    await queue.close();
  });
});
