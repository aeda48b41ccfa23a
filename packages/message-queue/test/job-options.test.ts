import type { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { delayBucket, MemoryProvider, maxDelayMs, Queue, Worker } from '../src/index.js';

describe('job option validation', () => {
  // A lone surrogate in an id or group reaches Redis inside a JSON argument that Lua's cjson
  // rejects: every exchange of the worker holding that job failed, so the worker stopped.
  it('rejects a jobId or group that is not well-formed Unicode, naming the field, before enqueueing', async () => {
    const queue = new Queue({ name: 'ids', provider: new MemoryProvider() });
    const cutEmoji = 'user-🌍'.slice(0, 6);
    await expect(queue.add('x', null, { jobId: cutEmoji })).rejects.toMatchObject({
      code: 'NOA_CONFIG_INVALID',
      fields: ['jobId'],
    });
    await expect(queue.add('x', null, { group: cutEmoji })).rejects.toMatchObject({ fields: ['group'] });
    expect((await queue.counts()).waiting).toBe(0);
    expect((await queue.add('x', null, { jobId: 'user-🌍', group: 'tenant-é' })).added).toBe(true);
  });

  it("rejects an addBulk item with a key it does not know (BullMQ's `opts`), naming the item and the key, before enqueueing", async () => {
    const queue = new Queue({ name: 'bulk-keys', provider: new MemoryProvider() });
    const bulk = [
      { name: 'ok', data: 1 },
      { name: 'late', data: 2, opts: { delay: 60_000 } },
    ] as unknown as Parameters<typeof queue.addBulk>[0];
    const error = await queue.addBulk(bulk).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'NOA_CONFIG_INVALID', fields: ['jobs.1.opts'] });
    expect((error as Error).message).toContain('jobs.1.opts');
    expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 0 });
    // Flows too, and a bad option of an item names its index.
    await expect(
      queue.addFlow({ name: 'p', data: 0, children: [{ name: 'c', data: 1, opt: {} }] } as never),
    ).rejects.toMatchObject({ fields: ['children.0.opt'] });
    await expect(queue.addBulk([{ name: 'a', data: 1, options: { delay: -1 } }])).rejects.toMatchObject({
      fields: ['jobs.0.options.delay'],
    });
    expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 0 });
  });

  // RabbitMQ refused the delay queue of `delay: 1e15` (x-expires past its 2^32-1 ms bound) with
  // a raw amqplib error, where the other providers took it: one bound for every provider.
  it('bounds delay to what every provider supports (RabbitMQ: bucket + expiry under 2^32 ms), naming delay', async () => {
    const queue = new Queue({ name: 'delay-bound', provider: new MemoryProvider() });
    for (const delay of [1e15, 4_200_000_001, Number.MAX_SAFE_INTEGER]) {
      const error = await queue.add('x', null, { delay }).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'NOA_CONFIG_INVALID', fields: ['delay'] });
    }
    expect((await queue.counts()).delayed).toBe(0);
    expect((await queue.add('x', null, { delay: maxDelayMs })).added).toBe(true);
    expect(delayBucket(maxDelayMs) + 60_000).toBeLessThanOrEqual(2 ** 32 - 1);
    expect(maxDelayMs).toBeGreaterThanOrEqual(40 * 24 * 3_600_000);
  });

  it('refuses a jobId in defaultJobOptions (every add after the first would be a no-op), naming defaultJobOptions.jobId', async () => {
    // Before: accepted, so the second add returned `added: false` and its job was never enqueued.
    const make = (defaultJobOptions: object) =>
      new Queue({ name: 'defaults', provider: new MemoryProvider(), defaultJobOptions });
    expect(() => make({ jobId: 'same' })).toThrow(
      expect.objectContaining({ code: 'NOA_CONFIG_INVALID', fields: ['defaultJobOptions.jobId'] }),
    );
    // The other defaults name their field under defaultJobOptions too.
    expect(() => make({ delay: -1 })).toThrow(
      expect.objectContaining({ fields: ['defaultJobOptions.delay'] }),
    );
    const queue = make({ attempts: 5, priority: 2 });
    await queue.add('a', 1);
    await queue.add('b', 2);
    expect((await queue.counts()).waiting).toBe(2);
  });

  it('rejects a group weight whose name is not well-formed Unicode', () => {
    const queue = new Queue({ name: 'weights', provider: new MemoryProvider() });
    let error: unknown;
    try {
      new Worker({ queue, handler: () => {}, autostart: false, groups: { weights: { '\uD800': 2 } } });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).fields).toEqual(['groups.weights.\uD800']);
  });

  it('rejects autoscale with min above max, naming autoscale.max', () => {
    const queue = new Queue({ name: 'autoscale', provider: new MemoryProvider() });
    let error: unknown;
    try {
      new Worker({ queue, handler: () => {}, autostart: false, autoscale: { min: 5, max: 2 } });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).fields).toEqual(['autoscale.max']);
  });
});
