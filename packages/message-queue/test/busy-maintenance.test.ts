import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

// README, Worker options: `maintenanceIntervalMs` "stalled recovery and retention pass (a busy
// worker also runs one after every 1,000 settled jobs)".
describe('maintenance of a busy worker', () => {
  it('runs a maintenance pass after 1,000 settled jobs, long before maintenanceIntervalMs', async () => {
    const provider = new MemoryProvider();
    let passes = 0;
    const maintain = provider.maintain.bind(provider);
    provider.maintain = (...args) => {
      passes += 1;
      return maintain(...args);
    };
    const queue = new Queue<number>({ name: 'busy', provider });
    await queue.addBulk(Array.from({ length: 999 }, (_, n) => ({ name: 'n', data: n })));
    let done = 0;
    const worker = new Worker({
      queue,
      concurrency: 50,
      maintenanceIntervalMs: 600_000,
      handler: () => {
        done += 1;
      },
    });
    try {
      await waitFor(async () => (await queue.counts()).completed === 999, 10_000, '999 jobs settled');
      expect(passes).toBe(0);
      await queue.add('n', 999);
      await waitFor(() => passes === 1, 5_000, 'a maintenance pass after the 1,000th settlement');
      expect(done).toBe(1_000);
    } finally {
      await worker.close();
    }
  });
});
