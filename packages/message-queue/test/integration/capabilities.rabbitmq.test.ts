import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

const unsupported = { code: 'NOA_MQ_UNSUPPORTED', name: 'UnsupportedOperationError' };

// The README's provider matrix, column "RabbitMQ" (no state store), row by row.
describe.skipIf(!reachable)('RabbitMQ without a state store: the provider matrix', () => {
  it('declares what it lacks, and the queue refuses it with UnsupportedOperationError (NOA_MQ_UNSUPPORTED)', async () => {
    expect(RabbitMqProvider.capabilities).toEqual({
      getJob: false,
      exactCounts: false,
      priorities: true,
      groups: false,
      flows: false,
      cancel: false,
      progress: false,
      dlqInspect: false,
      dedupe: false,
      leaseRecovery: false,
      globalPause: false,
    });
    // "With a store it passes the whole conformance suite, with no capability skipped."
    expect(Object.values(RabbitMqProvider.stateCapabilities).every(Boolean)).toBe(true);
    const provider = new RabbitMqProvider({ url });
    const queue = new Queue({ name: uniqueName('caps'), provider });
    try {
      expect(provider.capabilities).toBe(RabbitMqProvider.capabilities);
      await expect(queue.getJob('x')).rejects.toMatchObject(unsupported);
      await expect(queue.cancel('x')).rejects.toMatchObject(unsupported);
      await expect(queue.addFlow({ name: 'p', data: null, children: [] })).rejects.toMatchObject(unsupported);
      await expect(queue.dlq.list()).rejects.toMatchObject(unsupported);
      await expect(queue.dlq.retry('x')).rejects.toMatchObject(unsupported);
      await expect(queue.dlq.purge(['x'])).rejects.toMatchObject(unsupported);
    } finally {
      await provider.deleteQueue(queue.name);
      await provider.close();
    }
  });

  it('enqueues a repeated jobId again (added: true, runs twice), ignores group, and job.progress resolves without storing', async () => {
    const provider = new RabbitMqProvider({ url });
    const queue = new Queue<{ n: number }>({ name: uniqueName('caps'), provider });
    const runs: string[] = [];
    const worker = new Worker({
      queue,
      handler: async (job) => {
        await job.progress({ percent: 100 });
        runs.push(job.id);
      },
    });
    try {
      expect(await queue.add('x', { n: 1 }, { jobId: 'same' })).toEqual({ id: 'same', added: true });
      expect(await queue.add('x', { n: 2 }, { jobId: 'same' })).toEqual({ id: 'same', added: true });
      const { id } = await queue.add('x', { n: 3 }, { group: 'tenant-a' });
      await waitFor(() => runs.length === 3, 5_000, 'three runs');
      expect(runs.sort()).toEqual([id, 'same', 'same'].sort());
      // `completed` = 0: the broker keeps nothing of a finished job.
      expect((await queue.counts()).completed).toBe(0);
    } finally {
      await worker.close();
      await provider.deleteQueue(queue.name);
      await provider.close();
    }
  });
});
