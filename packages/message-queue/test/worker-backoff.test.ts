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
});
