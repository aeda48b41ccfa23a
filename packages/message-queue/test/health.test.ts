import { runHealthChecks, TimeoutError } from '@noa/core';
import { describe, expect, it, vi } from 'vitest';
import type { BackendState } from '../src/backend-health.js';
import { probeQueue, workerHealth } from '../src/health.js';
import { ClosedError, MemoryProvider, Queue, Worker } from '../src/index.js';

const state = {
  queue: 'q',
  closing: false,
  started: true,
  backendState: 'up' as BackendState,
  backendError: undefined,
};
const base = { ...state, activeJobs: 0, concurrency: 1, now: 3 };

describe('workerHealth', () => {
  it('is up while the backend answers, down with the outage error while it does not', () => {
    expect(workerHealth(base)).toEqual({
      component: 'worker:q',
      status: 'up',
      checkedAt: 3,
      details: {
        queue: 'q',
        started: true,
        backendUp: true,
        backendState: 'up',
        activeJobs: 0,
        concurrency: 1,
      },
    });
    const failure = new Error('ECONNREFUSED');
    expect(workerHealth({ ...base, backendState: 'down', backendError: failure })).toMatchObject({
      status: 'down',
      cause: failure,
    });
    expect(workerHealth({ ...base, backendState: 'down' })).not.toHaveProperty('cause');
  });

  it('is down, without a cause, until the backend first answered (not ready until proven)', () => {
    const report = workerHealth({ ...base, backendState: 'unknown' });
    expect(report.status).toBe('down');
    expect(report.details).toMatchObject({ backendUp: false, backendState: 'unknown' });
    expect(report).not.toHaveProperty('cause');
  });

  it('is down once closing, with a ClosedError', () => {
    const report = workerHealth({ ...base, closing: true });
    expect(report.status).toBe('down');
    expect(report.cause).toBeInstanceOf(ClosedError);
  });
});

describe('probeQueue', () => {
  it('is down with a TimeoutError when counts do not answer in time', async () => {
    const report = await probeQueue('q', false, () => new Promise(() => {}), 20);
    expect(report).toMatchObject({ component: 'queue:q', status: 'down' });
    expect(report.cause).toBeInstanceOf(TimeoutError);
  });

  it('is down with the error when counts reject', async () => {
    const failure = new Error('NOAUTH');
    expect(await probeQueue('q', false, () => Promise.reject(failure), 1_000)).toMatchObject({
      status: 'down',
      cause: failure,
    });
  });
});

describe('on the memory provider', () => {
  it('Worker.health() and Queue.checkHealth() are up, then down after close()', async () => {
    const queue = new Queue({ name: 'health', provider: new MemoryProvider() });
    const worker = new Worker({ queue, autostart: false, handler: () => {} });
    // Not started: its backend has not answered yet, so not ready.
    expect(worker.health()).toMatchObject({
      status: 'down',
      details: { started: false, backendState: 'unknown' },
    });
    worker.start();
    await vi.waitFor(() => expect(worker.health().status).toBe('up'));
    expect(worker.backendState).toBe('up');
    expect(await queue.checkHealth()).toMatchObject({ status: 'up', details: { counts: { waiting: 0 } } });
    await expect(queue.checkHealth({ timeoutMs: 0 })).rejects.toThrow(/timeoutMs/);
    await worker.close();
    await queue.close();
    expect(worker.health().status).toBe('down');
    expect((await queue.checkHealth()).status).toBe('down');
  });

  it("Queue.checkHealth()'s default deadline fires before runHealthChecks's default (its own report, not the outer timeout)", async () => {
    class HungProvider extends MemoryProvider {
      override counts(): Promise<never> {
        return new Promise<never>(() => {});
      }
    }
    const queue = new Queue({ name: 'hung-default', provider: new HungProvider() });
    const health = await runHealthChecks({ queue: () => queue.checkHealth() });
    expect(health.components.queue).toMatchObject({
      component: 'queue:hung-default',
      status: 'down',
      details: { queue: 'hung-default' },
    });
    expect(health.components.queue?.cause).toBeInstanceOf(TimeoutError);
    expect(String(health.components.queue?.cause)).toMatch(/counts of queue hung-default/);
    await queue.close();
  });

  it('Queue.checkHealth() sends no second count while one is unanswered (a hung backend gets no pile-up)', async () => {
    let counts = 0;
    const answers: (() => void)[] = [];
    class HungProvider extends MemoryProvider {
      override counts(queueName: string) {
        counts += 1;
        return new Promise<void>((resolve) => answers.push(resolve)).then(() => super.counts(queueName));
      }
    }
    const queue = new Queue({ name: 'hung-health', provider: new HungProvider() });
    // The count is given up after 10 × timeoutMs: 200 ms could pass during three probes on a
    // loaded machine, 2 s cannot.
    for (let probe = 0; probe < 3; probe += 1) {
      const report = await queue.checkHealth({ timeoutMs: 200 });
      expect(report.status).toBe('down');
      expect(report.cause).toBeInstanceOf(TimeoutError);
    }
    expect(counts).toBe(1);
    for (const answer of answers.splice(0)) answer();
    await new Promise((resolve) => setTimeout(resolve, 0));
    const checked = queue.checkHealth({ timeoutMs: 1_000 });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(counts).toBe(2);
    for (const answer of answers.splice(0)) answer();
    expect((await checked).status).toBe('up');
    await queue.close();
  });

  it('Queue.checkHealth() sends a new count once the unanswered one is 10 × timeoutMs old', async () => {
    let counts = 0;
    let hang = true;
    class StuckProvider extends MemoryProvider {
      override counts(queueName: string) {
        counts += 1;
        return hang ? new Promise<never>(() => {}) : super.counts(queueName);
      }
    }
    const queue = new Queue({ name: 'stuck-health', provider: new StuckProvider() });
    expect((await queue.checkHealth({ timeoutMs: 20 })).status).toBe('down');
    expect((await queue.checkHealth({ timeoutMs: 20 })).status).toBe('down');
    expect(counts).toBe(1);
    hang = false;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect((await queue.checkHealth({ timeoutMs: 20 })).status).toBe('up');
    expect(counts).toBe(2);
    await queue.close();
  });
});
