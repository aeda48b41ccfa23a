import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, type QueueProvider, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

const names = ['added', 'active', 'completed', 'failed', 'retried', 'dead-lettered', 'stalled', 'progress'];

/** Records every lifecycle message of `queue` as [event, message]. */
function recordEvents(queue: string) {
  const seen: [string, Record<string, unknown>][] = [];
  const listeners = names.map((event) => {
    const listener = (message: unknown) => {
      const record = message as Record<string, unknown>;
      if (record.queue === queue) seen.push([event, record]);
    };
    diagnosticsChannel.subscribe(`noa:message-queue:${event}`, listener);
    return () => diagnosticsChannel.unsubscribe(`noa:message-queue:${event}`, listener);
  });
  return {
    seen,
    stop: () => {
      for (const stop of listeners) stop();
    },
  };
}

// README, "Metrics and events": the message of each lifecycle event.
describe('lifecycle event messages', () => {
  it('added/active/completed { queue, jobId, name }; failed then retried or dead-lettered { queue, jobId, name, error, attempt }; progress { queue, jobId, name, progress }', async () => {
    const events = recordEvents('event-shapes');
    try {
      const queue = new Queue<{ fail: number }>({ name: 'event-shapes', provider: new MemoryProvider() });
      const flaky = await queue.add(
        'flaky',
        { fail: 1 },
        { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } },
      );
      const doomed = await queue.add('doomed', { fail: 9 }, { attempts: 1 });
      const worker = new Worker({
        queue,
        handler: async (job) => {
          await job.progress({ at: job.attempt });
          if (job.attempt <= job.data.fail) throw new Error(`try ${job.attempt} broke`);
          return 'ok';
        },
      });
      await waitFor(() => events.seen.some(([event]) => event === 'completed'), 5_000, 'the retry completed');
      await waitFor(
        () => events.seen.some(([event]) => event === 'dead-lettered'),
        5_000,
        'the doomed job dead',
      );
      await worker.close();
      const of = (id: string) => events.seen.filter(([, message]) => message.jobId === id);
      const common = (id: string, name: string) => ({ queue: 'event-shapes', jobId: id, name });
      expect(of(flaky.id)).toEqual([
        ['added', common(flaky.id, 'flaky')],
        ['active', common(flaky.id, 'flaky')],
        ['progress', { ...common(flaky.id, 'flaky'), progress: { at: 1 } }],
        ['failed', { ...common(flaky.id, 'flaky'), error: 'try 1 broke', attempt: 1 }],
        ['retried', { ...common(flaky.id, 'flaky'), error: 'try 1 broke', attempt: 1 }],
        ['active', common(flaky.id, 'flaky')],
        ['progress', { ...common(flaky.id, 'flaky'), progress: { at: 2 } }],
        ['completed', common(flaky.id, 'flaky')],
      ]);
      expect(of(doomed.id)).toEqual([
        ['added', common(doomed.id, 'doomed')],
        ['active', common(doomed.id, 'doomed')],
        ['progress', { ...common(doomed.id, 'doomed'), progress: { at: 1 } }],
        ['failed', { ...common(doomed.id, 'doomed'), error: 'try 1 broke', attempt: 1 }],
        ['dead-lettered', { ...common(doomed.id, 'doomed'), error: 'try 1 broke', attempt: 1 }],
      ]);
    } finally {
      events.stop();
    }
  });

  it('stalled: { queue, recovered, deadLettered, removed } per give-back or maintenance pass, not per job', async () => {
    const events = recordEvents('event-stalled');
    try {
      const provider = new MemoryProvider();
      const queue = new Queue({ name: 'event-stalled', provider });
      // Lease renewals never answered: each run finds its lease expired and gives the job back.
      const unanswered = new Proxy(provider, {
        get: (target, key) => {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key === 'extendLeases') return () => new Promise(() => {});
          return value.bind(target);
        },
      }) as QueueProvider;
      const worker = new Worker({
        queue: new Queue({ name: queue.name, provider: unanswered }),
        leaseMs: 150,
        maxStalls: 1,
        maintenanceIntervalMs: 600_000,
        handler: (job) =>
          new Promise((_resolve, reject) =>
            job.signal.addEventListener('abort', () => reject(job.signal.reason)),
          ),
      });
      await queue.add('blocker', null);
      await waitFor(async () => (await queue.counts()).failed === 1, 5_000, 'dead-lettered past maxStalls');
      await worker.close();
      expect(events.seen.filter(([event]) => event === 'stalled').map(([, message]) => message)).toEqual([
        { queue: 'event-stalled', recovered: 1, deadLettered: 0, removed: 0 },
        { queue: 'event-stalled', recovered: 0, deadLettered: 1, removed: 0 },
      ]);
    } finally {
      events.stop();
    }
  });
});
