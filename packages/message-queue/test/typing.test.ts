import { describe, expect, expectTypeOf, it } from 'vitest';
import { type Jsonified, MemoryProvider, Queue, Worker, type WorkerEvents } from '../src/index.js';
import { waitFor } from './helpers.js';

describe('types as the payload arrives (JSON)', () => {
  it('types job.data as its JSON-decoded form: a Date is a string, what JSON drops is gone', async () => {
    interface Payload {
      at: Date;
      n: number;
      tags: string[];
      when?: Date;
      nested: { on: Date; skip: () => void; pair: [Date, number] };
    }
    expectTypeOf<Jsonified<Payload>>().toEqualTypeOf<{
      at: string;
      n: number;
      tags: string[];
      when?: string;
      nested: { on: string; pair: [string, number] };
    }>();
    expectTypeOf<Jsonified<unknown>>().toEqualTypeOf<unknown>();
    expectTypeOf<Jsonified<{ a: number | undefined }>>().toEqualTypeOf<{ a?: number }>();
    const queue = new Queue<{ at: Date }>({ name: 'dates', provider: new MemoryProvider() });
    const seen: unknown[] = [];
    const worker = new Worker({
      queue,
      handler: (job) => {
        expectTypeOf(job.data.at).toEqualTypeOf<string>();
        seen.push(job.data.at);
      },
    });
    await queue.add('x', { at: new Date(0) });
    await waitFor(() => seen.length === 1);
    await worker.close();
    expect(seen).toEqual(['1970-01-01T00:00:00.000Z']);
    expectTypeOf<
      NonNullable<Awaited<ReturnType<typeof queue.getJob>>>['data']['at']
    >().toEqualTypeOf<string>();
  });

  it('types the worker events by name: an unknown event does not type-check', () => {
    const worker = new Worker({
      queue: new Queue({ name: 'ev', provider: new MemoryProvider() }),
      handler: () => 1,
      autostart: false,
    });
    expectTypeOf(worker.on<'completed'>)
      .parameter(1)
      .toEqualTypeOf<(...args: WorkerEvents<number>['completed']) => void>();
    expectTypeOf<Parameters<typeof worker.once>[0]>().toEqualTypeOf<keyof WorkerEvents>();
    // @ts-expect-error there is no 'active' event
    worker.once('active', () => {});
    worker.once('completed', (id, result) => {
      expectTypeOf(id).toEqualTypeOf<string>();
      expectTypeOf(result).toEqualTypeOf<number>();
    });
  });

  it("types the completed event's result as the handler's return value", async () => {
    const queue = new Queue<{ n: number }>({ name: 'result-type', provider: new MemoryProvider() });
    const worker = new Worker({
      queue,
      handler: async (job) => ({ doubled: job.data.n * 2, at: new Date(0) }),
    });
    const results: { doubled: number; at: Date }[] = [];
    worker.on('completed', (_id, result) => {
      expectTypeOf(result).toEqualTypeOf<{ doubled: number; at: Date }>();
      results.push(result);
    });
    // A worker typed by hand with no Result keeps `unknown`.
    expectTypeOf<Parameters<Parameters<Worker<{ n: number }>['on']>[1]>[1]>().toEqualTypeOf<unknown>();
    await queue.add('x', { n: 21 });
    await waitFor(() => results.length === 1);
    await worker.close();
    // The handler's own value, not its stored JSON form: the Date is still a Date.
    expect(results[0]).toEqual({ doubled: 42, at: new Date(0) });
    expect(results[0]?.at).toBeInstanceOf(Date);
  });
});
