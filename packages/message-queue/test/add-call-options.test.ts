import path from 'node:path';
import { readmeBlocks, runReadmeBlock } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import {
  AddNotConfirmedError,
  ConfigError,
  MemoryProvider,
  Queue,
  type QueueProvider,
} from '../src/index.js';

/** A memory provider whose adds never answer (a backend down under ioredis's offline queue). */
function unanswered(): QueueProvider {
  const memory = new MemoryProvider();
  return new Proxy(memory, {
    get: (target, key) => {
      if (key === 'add' || key === 'addFlow') return () => new Promise(() => {});
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('add call options (timeoutMs, signal, addTimeoutMs)', () => {
  it('rejects bad call options and a bad queue default with ConfigError naming the field', async () => {
    const queue = new Queue({ name: 'calls', provider: new MemoryProvider() });
    await expect(queue.add('a', 1, undefined, { timeoutMs: -1 })).rejects.toMatchObject({
      fields: ['timeoutMs'],
    });
    await expect(queue.addBulk([], { signal: 'soon' as never })).rejects.toBeInstanceOf(ConfigError);
    expect(() => new Queue({ name: 'calls', provider: new MemoryProvider(), addTimeoutMs: 0 })).toThrow(
      ConfigError,
    );
  });

  it('a call timeoutMs overrides the queue default; the error names generated ids of the batch', async () => {
    const queue = new Queue({ name: 'calls', provider: unanswered(), addTimeoutMs: 60_000 });
    const error = await queue
      .addBulk(
        [
          { name: 'a', data: 1 },
          { name: 'b', data: 2 },
        ],
        { timeoutMs: 20 },
      )
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AddNotConfirmedError);
    expect((error as AddNotConfirmedError).jobIds).toHaveLength(2);
    expect((error as AddNotConfirmedError).details).toMatchObject({ timeoutMs: 20, mayBeEnqueued: true });
    const flow = queue.addFlow({ name: 'p', data: 0, children: [{ name: 'c', data: 1 }] }, { timeoutMs: 20 });
    await expect(flow).rejects.toMatchObject({ code: 'NOA_MQ_ADD_NOT_CONFIRMED', reason: 'timeout' });
  });

  it('without a bound an add waits as before, and a bound add that is answered resolves', async () => {
    const queue = new Queue({ name: 'calls', provider: new MemoryProvider(), addTimeoutMs: 5_000 });
    const controller = new AbortController();
    expect(await queue.add('a', 1, { jobId: 'x' }, { signal: controller.signal })).toEqual({
      id: 'x',
      added: true,
    });
    controller.abort();
    expect(await queue.add('a', 1, { jobId: 'x' })).toEqual({ id: 'x', added: false });
  });
});

describe('README: bounding an add', () => {
  const packageDir = path.resolve(import.meta.dirname, '..');
  it('the example reports an aborted add and enqueues once', async () => {
    const [block] = readmeBlocks(packageDir).filter((found) => found.tag === 'add-bound');
    const logged = await runReadmeBlock(packageDir, block!.code);
    expect(logged).toEqual([['retry later (may be enqueued: false)'], ['queued'], [1]]);
  });
});
