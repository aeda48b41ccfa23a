import { recordingLogger } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, type QueueProvider, Worker } from '../src/index.js';
import { sleep, waitFor } from './helpers.js';

describe('worker backoff when the backend fails', () => {
  it('waits between failed exchanges even when the provider says work is buffered', async () => {
    const memory = new MemoryProvider();
    let exchanges = 0;
    // A backend that fails every exchange while it holds deliveries (RabbitMQ's waitForWork
    // returns at once then): without its own back-off the worker retried in a microtask loop
    // that starved timers, I/O and everything else in the process.
    const failing = new Proxy(memory, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (typeof value !== 'function') return value;
        if (key === 'waitForWork') return async () => {};
        if (key !== 'exchange') return value.bind(target);
        return async (..._args: Parameters<QueueProvider['exchange']>) => {
          exchanges += 1;
          // Past 200 tries, yield to timers so that this test ends (and fails) instead of hanging.
          if (exchanges > 200) await sleep(1);
          throw new Error('backend unavailable');
        };
      },
    });
    const worker = new Worker({
      queue: new Queue({ name: 'failing', provider: failing }),
      handler: () => {},
    });
    await sleep(300);
    await worker.close(0);
    // 50 ms doubling: about 3 tries in 300 ms.
    expect(exchanges).toBeGreaterThanOrEqual(2);
    expect(exchanges).toBeLessThanOrEqual(8);
  });

  it('warns when a job names a custom backoff strategy this worker does not have', async () => {
    const logger = recordingLogger();
    const queue = new Queue({ name: 'typo', provider: new MemoryProvider() });
    // A typo, or a worker deployed without the strategy: retried at once, hammering what failed.
    await queue.add('call', null, { attempts: 3, backoff: { type: 'custom', strategy: 'lineer' } });
    let tries = 0;
    const worker = new Worker({
      queue,
      logger,
      backoffStrategies: { linear: (attempt) => attempt * 1_000 },
      handler: () => {
        tries += 1;
        throw new Error('down');
      },
    });
    await waitFor(() => tries === 3);
    await worker.close();
    expect(logger.lines('warn').filter((warning) => warning.includes('lineer'))).toHaveLength(1);
  });

  it('fails the try as usual when a custom backoff strategy throws (no unhandled rejection)', async () => {
    const logger = recordingLogger();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const queue = new Queue({ name: 'throwing-strategy', provider: new MemoryProvider() });
    const tries: number[] = [];
    const failed: boolean[] = [];
    const worker = new Worker({
      queue,
      logger,
      leaseMs: 300,
      maintenanceIntervalMs: 100,
      backoffStrategies: {
        broken: () => {
          throw new Error('strategy bug');
        },
      },
      handler: async (job) => {
        tries.push(job.attempt);
        throw new Error('down');
      },
    });
    worker.on('failed', (_id, _error, willRetry) => failed.push(willRetry));
    try {
      const { id } = await queue.add('call', null, {
        attempts: 3,
        backoff: { type: 'custom', strategy: 'broken' },
      });
      // Before: the throw escaped the worker (an unhandled rejection, which ends a Node process),
      // no try was stored, and the job came back only through lease expiry, as a stall.
      await waitFor(() => failed.length === 3, 3_000, 'three failed tries');
      expect(tries).toEqual([1, 2, 3]);
      expect(failed).toEqual([true, true, false]);
      const [dead] = await queue.dlq.list();
      expect(dead?.id).toBe(id);
      expect(dead?.errors.map((entry) => entry.message)).toEqual(['down', 'down', 'down']);
      await sleep(50);
      expect(unhandled).toEqual([]);
      expect(logger.lines('warn').filter((warning) => warning.includes('strategy bug'))).toHaveLength(1);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await worker.close();
    }
  });
});
