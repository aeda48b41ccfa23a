import { describe, expect, it } from 'vitest';
import { ClosedError, MemoryProvider, Queue, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

// README, Errors: ClosedError is "an add on a Queue after its close()"; "queue.close() only stops
// adds and leaves workers alone". (The table said "a call on a Queue": reads, cancel, pause and
// the DLQ still answer after close, as this shows.)
describe('Queue.close()', () => {
  it('refuses adds with ClosedError (NOA_CLOSED) and leaves reads, cancel, pause, the DLQ and workers working', async () => {
    const provider = new MemoryProvider();
    const queue = new Queue({ name: 'closing', provider });
    const { id } = await queue.add('before', null, { delay: 60_000 });
    const ran: string[] = [];
    const worker = new Worker({ queue, handler: (job) => void ran.push(job.name) });
    await queue.close();
    await expect(queue.add('x', null)).rejects.toBeInstanceOf(ClosedError);
    await expect(queue.addBulk([{ name: 'x', data: null }])).rejects.toMatchObject({ code: 'NOA_CLOSED' });
    await expect(queue.addFlow({ name: 'p', data: null, children: [] })).rejects.toMatchObject({
      code: 'NOA_CLOSED',
    });
    expect((await queue.getJob(id))?.state).toBe('delayed');
    expect((await queue.counts()).delayed).toBe(1);
    await queue.pause();
    await queue.resume();
    expect(await queue.cancel(id)).toBe('removed');
    expect((await queue.dlq.list()).map((job) => job.id)).toEqual([id]);
    // The worker built on it still runs jobs added through another queue object of the name.
    await new Queue({ name: 'closing', provider }).add('after', null);
    await waitFor(() => ran.includes('after'), 5_000, 'the worker to run a job added after close');
    await worker.close();
  });
});
