import diagnosticsChannel from 'node:diagnostics_channel';
import { ConfigError } from '@noa/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

describe('metrics, events and options', () => {
  it('counts completed, retried and dead-lettered jobs and observes timings', async () => {
    const registry = new Registry();
    const queue = new Queue({ name: 'metrics', provider: new MemoryProvider(), registry });
    await queue.add('ok', null);
    await queue.add('bad', null, { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } });
    const worker = new Worker({
      queue,
      registry,
      handler: (job) => {
        if (job.name === 'bad') throw new Error('nope');
      },
    });
    let dead = 0;
    worker.on('failed', (_id, _error, willRetry) => {
      if (!willRetry) dead += 1;
    });
    await waitFor(() => dead === 1);
    await worker.close();
    await queue.counts();
    const text = await registry.metrics();
    expect(text).toContain('noa_message_queue_jobs_added_total{queue="metrics"} 2');
    expect(text).toContain('noa_message_queue_jobs_completed_total{queue="metrics"} 1');
    expect(text).toContain('noa_message_queue_jobs_retried_total{queue="metrics"} 1');
    expect(text).toContain('noa_message_queue_jobs_dead_lettered_total{queue="metrics"} 1');
    expect(text).toContain('noa_message_queue_processing_seconds_count{queue="metrics"} 3');
    expect(text).toContain('noa_message_queue_queue_wait_seconds_count{queue="metrics"} 3');
    expect(text).toContain('noa_message_queue_queue_depth_jobs{queue="metrics",state="failed"} 1');
  });

  it('counts a poison job dead-lettered by stalled recovery as dead-lettered', async () => {
    const registry = new Registry();
    const provider = new MemoryProvider();
    const queue = new Queue({ name: 'poison-metrics', provider, registry });
    await queue.add('poison', null);
    // Its worker died holding it (the lease ran out); with maxStalls 0 the first expiry is final.
    const now = Date.now();
    await provider.exchange(queue.name, {
      settle: [],
      fetch: 1,
      leaseUntil: now - 1,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    const worker = new Worker({ queue, registry, handler: () => {}, maxStalls: 0, autostart: false });
    await worker.maintain();
    expect((await queue.counts()).failed).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('noa_message_queue_jobs_stalled_total{queue="poison-metrics"} 1');
    // Before: only 'stalled' moved, so an alert on DLQ growth missed the poison job.
    expect(text).toContain('noa_message_queue_jobs_dead_lettered_total{queue="poison-metrics"} 1');
    await worker.close();
  });

  it('publishes lifecycle events on diagnostics channels', async () => {
    const seen: string[] = [];
    const listener = (message: unknown) => seen.push((message as { jobId: string }).jobId);
    diagnosticsChannel.subscribe('noa:message_queue:completed', listener);
    try {
      const queue = new Queue({ name: 'events', provider: new MemoryProvider() });
      const { id } = await queue.add('x', null);
      const worker = new Worker({ queue, handler: () => 'ok' });
      await waitFor(() => seen.includes(id));
      await worker.close();
    } finally {
      diagnosticsChannel.unsubscribe('noa:message_queue:completed', listener);
    }
  });

  it('names the bad field of invalid options', () => {
    const provider = new MemoryProvider();
    expect(() => new Queue({ name: 'bad name!', provider })).toThrow(ConfigError);
    const queue = new Queue({ name: 'ok', provider });
    try {
      new Worker({ queue, handler: () => undefined, concurrency: 0 });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).fields).toEqual(['concurrency']);
    }
    return expect(queue.add('x', null, { priority: 11 })).rejects.toMatchObject({ fields: ['priority'] });
  });

  it('autoscales concurrency to queue depth', async () => {
    const queue = new Queue({ name: 'autoscale', provider: new MemoryProvider() });
    await queue.addBulk(Array.from({ length: 200 }, () => ({ name: 'x', data: null })));
    const release: (() => void)[] = [];
    const worker = new Worker({
      queue,
      autoscale: { min: 1, max: 8, jobsPerSlot: 10, intervalMs: 20 },
      handler: () => new Promise<void>((resolve) => release.push(resolve)),
    });
    expect(worker.concurrency).toBe(1);
    await waitFor(() => worker.concurrency === 8, 2_000, 'scale up');
    await queue.drain();
    while (release.length > 0) release.shift()!();
    await waitFor(() => worker.concurrency === 1, 2_000, 'scale down');
    await worker.close();
  });
});
