import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import * as zm from 'zod/mini';
import { z as z3 } from 'zod/v3';
import { InvalidPayloadError, MemoryProvider, Queue, type StandardSchemaV1, Worker } from '../src/index.js';
import { waitFor } from './helpers.js';

/** A Standard Schema written by hand, as a library without zod would ship one (async, too). */
const positive: StandardSchemaV1<unknown, { n: number }> = {
  '~standard': {
    version: 1,
    vendor: 'hand-written',
    validate: async (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as { n?: unknown }).n === 'number' &&
      (value as { n: number }).n > 0
        ? { value: value as { n: number } }
        : { issues: [{ message: 'n must be a positive number', path: [{ key: 'n' }] }] },
  },
};

describe('payload schemas: any Standard Schema (zod 4, zod/mini, zod 3, hand-written)', () => {
  it('validates with each, naming the field, and stores the schema output', async () => {
    const provider = new MemoryProvider();
    const zod4 = new Queue({
      name: 'zod4',
      provider,
      schema: z.object({ n: z.number(), tag: z.string().default('x') }),
    });
    const mini = new Queue({ name: 'mini', provider, schema: zm.object({ n: zm.number() }) });
    const zod3 = new Queue({ name: 'zod3', provider, schema: z3.object({ n: z3.number() }) });
    const hand = new Queue({ name: 'hand', provider, schema: positive });
    expectTypeOf(zod4).toEqualTypeOf<Queue<{ n: number; tag: string }>>();
    expectTypeOf(mini).toEqualTypeOf<Queue<{ n: number }>>();
    expectTypeOf(zod3).toEqualTypeOf<Queue<{ n: number }>>();
    expectTypeOf(hand).toEqualTypeOf<Queue<{ n: number }>>();
    for (const queue of [zod4, mini, zod3, hand] as Queue<{ n: number }>[]) {
      const error = await queue.add('bad', { n: 'one' } as never).catch((caught: unknown) => caught);
      expect(error, queue.name).toBeInstanceOf(InvalidPayloadError);
      expect((error as InvalidPayloadError).fields, queue.name).toEqual(['n']);
      expect((await queue.counts()).waiting).toBe(0);
    }
    await expect(hand.add('bad', { n: -1 })).rejects.toThrow(/n must be a positive number/);
    // The stored payload is the schema's output (zod's default applied).
    const { id } = await zod4.add('ok', { n: 1 } as { n: number; tag: string });
    expect((await zod4.getJob(id))?.data).toEqual({ n: 1, tag: 'x' });
    const seen: number[] = [];
    const worker = new Worker({ queue: hand, handler: (job) => void seen.push(job.data.n) });
    await hand.add('ok', { n: 2 });
    await waitFor(() => seen.includes(2));
    await worker.close();
  });

  it('names the job of a bulk add or flow whose payload is bad, and every bad one', async () => {
    const queue = new Queue({
      name: 'batch',
      provider: new MemoryProvider(),
      schema: z.object({ to: z.email(), tags: z.array(z.string()).optional() }),
    });
    const bulk = await queue
      .addBulk([
        { name: 'a', data: { to: 'a@example.com' } },
        { name: 'b', data: { to: 'a@example.com', tags: ['x', 3 as never] } },
        { name: 'c', data: { to: 'nope' } },
      ])
      .catch((caught: unknown) => caught);
    expect(bulk).toBeInstanceOf(InvalidPayloadError);
    expect((bulk as InvalidPayloadError).fields).toEqual(['jobs.1.data.tags.1', 'jobs.2.data.to']);
    const flow = await queue
      .addFlow({
        name: 'p',
        data: { to: 'bad' },
        children: [
          { name: 'c', data: { to: 'a@example.com' } },
          { name: 'c', data: { to: 'bad' } },
        ],
      })
      .catch((caught: unknown) => caught);
    expect(flow).toBeInstanceOf(InvalidPayloadError);
    expect((flow as InvalidPayloadError).fields).toEqual(['data.to', 'children.1.data.to']);
    // A single add names the field alone, as before.
    const single = await queue.add('d', { to: 'bad' }).catch((caught: unknown) => caught);
    expect((single as InvalidPayloadError).fields).toEqual(['to']);
    expect(await queue.counts()).toMatchObject({ waiting: 0, waitingChildren: 0 });
  });

  it('refuses a schema option that is no Standard Schema, naming it', () => {
    expect(
      () => new Queue({ name: 'x', provider: new MemoryProvider(), schema: { parse() {} } as never }),
    ).toThrow(/schema: expected a Standard Schema/);
  });
});
