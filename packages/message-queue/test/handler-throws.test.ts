import { describe, expect, it } from 'vitest';
import { MemoryProvider, Queue, Worker } from '../src/index.js';
import { sleep, waitFor } from './helpers.js';

/** What handlers throw besides a well-formed Error, each with the history entry it must leave. */
const cases: { label: string; make: () => unknown; entry: { name: string; message: string | RegExp } }[] = [
  {
    label: 'an Error whose message is not a string',
    make: () => Object.assign(new Error('x'), { message: 42 }),
    entry: { name: 'Error', message: '42' },
  },
  {
    label: 'an Error whose name is not a string',
    make: () => Object.assign(new Error('y'), { name: 7 }),
    entry: { name: '7', message: 'y' },
  },
  {
    label: 'an object whose message getter throws',
    make: () => ({
      get message(): string {
        throw new Error('getter');
      },
    }),
    entry: { name: 'Error', message: /cannot be read.*getter/ },
  },
  {
    label: 'a revoked proxy',
    make: () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy;
    },
    entry: { name: 'Error', message: /cannot be read/ },
  },
];

describe('a handler that throws something other than a well-formed Error', () => {
  for (const { label, make, entry } of cases) {
    it(`records the try and dead-letters the job: ${label}`, async () => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const queue = new Queue({ name: 'odd-throw', provider: new MemoryProvider() });
      const failed: boolean[] = [];
      const worker = new Worker({
        queue,
        leaseMs: 300,
        maintenanceIntervalMs: 100,
        handler: async () => {
          throw make();
        },
      });
      worker.on('failed', (_id, _error, willRetry) => failed.push(willRetry));
      try {
        const { id } = await queue.add('call', null, { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } });
        // Before: reading the thrown value threw inside the worker (an unhandled rejection), no
        // try was stored, and the job came back through lease expiry until dead-lettered as a stall.
        await waitFor(() => failed.length === 2, 3_000, 'two failed tries');
        expect(failed).toEqual([true, false]);
        const [dead] = await queue.dlq.list();
        expect(dead?.id).toBe(id);
        expect(dead?.errors).toHaveLength(2);
        for (const [index, stored] of (dead?.errors ?? []).entries()) {
          expect(stored.attempt).toBe(index + 1);
          expect(stored.name).toBe(entry.name);
          expect(stored.message).toMatch(entry.message);
        }
        await sleep(20);
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
        await worker.close();
      }
    });
  }
});
