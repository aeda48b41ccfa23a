import diagnosticsChannel from 'node:diagnostics_channel';
import { ConfigError } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { jobEvents, LeaseLostError, MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

const retention = {
  completedCount: 1_000,
  completedAgeMs: 3_600_000,
  deadCount: 1_000,
  deadAgeMs: 3_600_000,
};

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

  it('a leased-ahead job cancelled before it starts is dead-lettered without being counted as processed', async () => {
    const registry = new Registry();
    const queue = new Queue({ name: 'cancel-ahead', provider: new MemoryProvider(), registry });
    const { id: first } = await queue.add('slow', null);
    const { id: second } = await queue.add('ahead', null);
    let release!: () => void;
    const started: string[] = [];
    const worker = new Worker({
      queue,
      registry,
      prefetch: 1,
      handler: async (job) => {
        started.push(job.id);
        if (job.id === first) await new Promise<void>((resolve) => (release = resolve));
      },
    });
    const failed: string[] = [];
    worker.on('failed', (id) => failed.push(id));
    await waitFor(() => started.length === 1);
    // The second job is leased ahead (prefetch 1) behind the running first one.
    await waitFor(async () => (await queue.getJob(second))?.state === 'active');
    expect(await queue.cancel(second)).toBe('signalled');
    await waitFor(() => failed.includes(second));
    const histogram = async () =>
      (await registry.getSingleMetric('noa_message_queue_processing_seconds')!.get()).values.find(
        (value) =>
          (value as { metricName?: string }).metricName === 'noa_message_queue_processing_seconds_count',
      )?.value ?? 0;
    // Before: observed as a try of 0 s (and averaged into the run time `prefetch: 'auto'` uses).
    expect(await histogram()).toBe(0);
    release();
    await waitFor(async () => (await queue.getJob(first))?.state === 'completed');
    expect(await histogram()).toBe(1);
    expect(started).toEqual([first]);
    expect((await queue.getJob(second))?.state).toBe('failed');
    await worker.close();
  });

  it('a job given back as a stall (its lease expired) is counted in jobs_stalled_total, and in jobs_dead_lettered_total past maxStalls', async () => {
    const registry = new Registry();
    const memory = new MemoryProvider();
    // Lease renewals never answered: the worker finds each lease expired and gives the job back.
    const unanswered = new Proxy(memory, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key === 'extendLeases') return () => new Promise(() => {});
        return value.bind(target);
      },
    });
    const queue = new Queue({ name: 'stall-giveback', provider: unanswered, registry });
    const { id } = await queue.add('blocker', null);
    const worker = new Worker({
      queue,
      registry,
      leaseMs: 150,
      maxStalls: 1,
      maintenanceIntervalMs: 60_000,
      handler: (job) =>
        new Promise((_resolve, reject) =>
          job.signal.addEventListener('abort', () => reject(job.signal.reason)),
        ),
    });
    await waitFor(async () => (await queue.getJob(id))?.state === 'failed', 5_000, 'the job dead-lettered');
    await worker.close();
    const text = await registry.metrics();
    // Before: neither counted (only maintenance passes counted stalls).
    expect(text).toContain('noa_message_queue_jobs_stalled_total{queue="stall-giveback"} 2');
    expect(text).toContain('noa_message_queue_jobs_dead_lettered_total{queue="stall-giveback"} 1');
  });

  it('queue_depth_jobs is counted at scrape time (cached briefly, bounded by a deadline), not only when the app calls counts()', async () => {
    const registry = new Registry();
    const provider = new MemoryProvider();
    let now = 1_000_000;
    const clock = { now: () => now };
    let countCalls = 0;
    const counts = provider.counts.bind(provider);
    provider.counts = (name) => {
      countCalls += 1;
      return counts(name);
    };
    const queue = new Queue({ name: 'depth', provider, registry, clock, depthTimeoutMs: 200 });
    const other = new Queue({ name: 'depth-2', provider, registry, clock });
    const depth = async (name: string, state: string) => {
      const metric = await registry.getSingleMetric('noa_message_queue_queue_depth_jobs')!.get();
      return metric.values.find((value) => value.labels.queue === name && value.labels.state === state)
        ?.value;
    };
    await queue.add('a', null);
    await queue.add('b', null);
    await other.add('c', null, { delay: 5_000 });
    expect(await depth('depth', 'waiting')).toBe(2);
    expect(await depth('depth-2', 'delayed')).toBe(1);
    // A scrape storm within the cache time counts once per queue.
    const calls = countCalls;
    await Promise.all([registry.metrics(), registry.metrics(), registry.metrics()]);
    expect(countCalls).toBe(calls);
    await queue.add('c', null);
    expect(await depth('depth', 'waiting')).toBe(2);
    now += 1_001;
    expect(await depth('depth', 'waiting')).toBe(3);
    // A backend that does not answer does not hold the scrape past the deadline: the last values stay.
    now += 1_001;
    provider.counts = () => new Promise(() => {});
    const started = performance.now();
    expect(await depth('depth', 'waiting')).toBe(3);
    expect(performance.now() - started).toBeLessThan(5_000);
    // A closed queue is no longer counted.
    await queue.close();
    await other.close();
    let countedAfterClose = false;
    provider.counts = (name) => {
      countedAfterClose = true;
      return counts(name);
    };
    now += 1_001;
    await registry.metrics();
    expect(countedAfterClose).toBe(false);
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

  it("counts and logs a stalled worker's refused renewals and late outcome, and reports it neither completed nor failed", async () => {
    const registry = new Registry();
    const provider = new MemoryProvider();
    // The worker's heartbeat is frozen (as by a blocked event loop) until `frozen` is cleared.
    let frozen = true;
    const stalling = new Proxy(provider, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key !== 'extendLeases') return value.bind(target);
        return (...args: Parameters<MemoryProvider['extendLeases']>) =>
          frozen ? Promise.resolve({ cancelled: [], lost: [] }) : target.extendLeases(...args);
      },
    });
    const queue = new Queue({ name: 'lost-leases', provider: stalling });
    const { id } = await queue.add('x', null);
    const logger = recordingLogger();
    let finish = (): void => {};
    const mayFinish = new Promise<void>((resolve) => {
      finish = resolve;
    });
    let started = false;
    const events: string[] = [];
    const reasons: unknown[] = [];
    const worker = new Worker({
      queue,
      registry,
      logger,
      leaseMs: 300,
      maintenanceIntervalMs: 60_000,
      handler: async (job) => {
        started = true;
        job.signal.addEventListener('abort', () => reasons.push(job.signal.reason));
        // Finishes anyway, ignoring its signal: its late outcome must be refused.
        await mayFinish;
      },
    });
    worker.on('completed', () => events.push('completed'));
    worker.on('failed', () => events.push('failed'));
    await waitFor(() => started);
    // Its lease expires; another worker recovers the job and leases it.
    await waitFor(
      async () => (await provider.maintain(queue.name, Date.now(), 3, retention)).recovered === 1,
    );
    const now = Date.now();
    const other = await provider.exchange(queue.name, {
      settle: [],
      fetch: 1,
      leaseUntil: now + 60_000,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    expect(other.jobs.map((job) => job.id)).toEqual([id]);
    frozen = false;
    await waitFor(() =>
      logger.messages('warn').some((message) => message.startsWith('lease renewals refused')),
    );
    // The refused renewal aborts the handler's signal (before, it ran on unaware).
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(LeaseLostError);
    expect(reasons[0]).toMatchObject({ code: 'NOA_MQ_LEASE_LOST', reason: 'revoked' });
    finish();
    await waitFor(() =>
      logger.messages('warn').some((message) => message.startsWith('late outcomes refused')),
    );
    await worker.close();
    expect(events).toEqual([]);
    expect((await provider.getJob(queue.name, id))?.state).toBe('active');
    const lost = /noa_message_queue_leases_lost_total\{queue="lost-leases"\} (\d+)/.exec(
      await registry.metrics(),
    );
    // One lost lease, counted once: at the refused renewal, not again at the refused completion
    // (before, every refused renewal and the completion each counted).
    expect(Number(lost?.[1])).toBe(1);
  });

  it("a logger whose methods throw breaks neither the queue's calls nor its worker's", async () => {
    const thrown: string[] = [];
    const throwing = (level: string) => (message: string) => {
      thrown.push(`${level}: ${message}`);
      throw new Error(`logger ${level} is broken`);
    };
    const logger = {
      debug: throwing('debug'),
      info: throwing('info'),
      warn: throwing('warn'),
      error: throwing('error'),
    };
    const queue = new Queue({ name: 'throwing-logger', provider: new MemoryProvider(), logger });
    const worker = new Worker({ queue, logger, handler: () => 'ok' });
    const completed = new Promise((resolve) => worker.once('completed', resolve));
    await queue.add('x', null);
    await completed;
    await worker.close();
    // Before: the queue used the logger as given, so its own 'queue closed' line threw out of close().
    await expect(queue.close()).resolves.toBeUndefined();
    expect(thrown).toContain('debug: queue closed');
  });

  it('publishes lifecycle events on diagnostics channels named noa:message-queue:<event>, like the other packages', async () => {
    expect(Object.values(jobEvents).map((channel) => String(channel.name))).toEqual(
      ['added', 'active', 'completed', 'failed', 'retried', 'dead-lettered', 'stalled', 'progress'].map(
        (event) => `noa:message-queue:${event}`,
      ),
    );
    const seen: string[] = [];
    const listener = (message: unknown) => seen.push((message as { jobId: string }).jobId);
    diagnosticsChannel.subscribe('noa:message-queue:completed', listener);
    try {
      const queue = new Queue({ name: 'events', provider: new MemoryProvider() });
      const { id } = await queue.add('x', null);
      const worker = new Worker({ queue, handler: () => 'ok' });
      await waitFor(() => seen.includes(id));
      await worker.close();
    } finally {
      diagnosticsChannel.unsubscribe('noa:message-queue:completed', listener);
    }
  });

  it("publishes 'added' for every job of a flow, as its metric counts them", async () => {
    const added: { jobId: string; name: string }[] = [];
    const listener = (message: unknown) => added.push(message as { jobId: string; name: string });
    diagnosticsChannel.subscribe('noa:message-queue:added', listener);
    try {
      const registry = new Registry();
      const queue = new Queue({ name: 'flow-events', provider: new MemoryProvider(), registry });
      const flow = await queue.addFlow({
        name: 'parent',
        data: null,
        children: [
          { name: 'child', data: 1 },
          { name: 'child', data: 2 },
        ],
      });
      expect(added.map((event) => event.jobId).sort()).toEqual([flow.id, ...flow.childIds].sort());
      expect(added.find((event) => event.jobId === flow.id)?.name).toBe('parent');
      const metric = await registry.getSingleMetric('noa_message_queue_jobs_added_total')?.get();
      expect(metric?.values[0]?.value).toBe(3);
      // A flow deduplicated by its parent's id adds nothing and publishes nothing.
      await queue.addFlow({ name: 'parent', data: null, options: { jobId: flow.id }, children: [] });
      expect(added).toHaveLength(3);
    } finally {
      diagnosticsChannel.unsubscribe('noa:message-queue:added', listener);
    }
  });

  it('counts flow parents waiting for their children in queue_depth_jobs (state waiting-children)', async () => {
    const registry = new Registry();
    const queue = new Queue({ name: 'depth-flows', provider: new MemoryProvider(), registry });
    await queue.addFlow({ name: 'parent', data: null, children: [{ name: 'child', data: 1 }] });
    const metric = await registry.getSingleMetric('noa_message_queue_queue_depth_jobs')?.get();
    const value = (state: string) => metric?.values.find((entry) => entry.labels.state === state)?.value;
    expect(value('waiting-children')).toBe(1);
    expect(value('waiting')).toBe(1);
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

  it('keeps one autoscale count in flight while the backend does not answer', async () => {
    let counts = 0;
    let answer: (() => void) | undefined;
    class FrozenCounts extends MemoryProvider {
      override async counts(queueName: string) {
        counts += 1;
        await new Promise<void>((resolve) => (answer = resolve));
        return super.counts(queueName);
      }
    }
    const queue = new Queue({ name: 'autoscale-frozen', provider: new FrozenCounts() });
    const worker = new Worker({
      queue,
      autoscale: { min: 1, max: 8, jobsPerSlot: 10, intervalMs: 10 },
      handler: () => undefined,
    });
    try {
      await waitFor(() => counts >= 1);
      await new Promise((resolve) => setTimeout(resolve, 200)); // twenty intervals
      expect(counts).toBe(1);
      answer?.();
      await waitFor(() => counts >= 2, 2_000, 'the next count once the first answered');
    } finally {
      answer?.();
      await worker.close();
    }
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
