import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import { z } from 'zod';
import {
  InvalidPayloadError,
  type Job,
  JobCancelledError,
  type JobRecord,
  JobTimeoutError,
  type Jsonified,
  type ProviderCapabilities,
  Queue,
  type QueueProvider,
  type Settlement,
  Worker,
  type WorkerOptions,
} from '../../src/index.js';
import { sleep, waitFor } from '../helpers.js';
import { dropCancelMessages } from './drop-cancel-messages.js';

/** A backend under test: how to make its provider, or why it is skipped. */
export interface ConformanceTarget {
  name: string;
  /** Set when the backend is unreachable: the whole suite is skipped and this is printed. */
  skipReason?: string | undefined;
  /** The provider's declared capabilities (static, so unsupported tests are skipped up front). */
  capabilities: ProviderCapabilities;
  create: () => Promise<QueueProvider>;
  /** Deletes a queue's backend objects after the suite (e.g. RabbitMQ queues). */
  cleanupQueue?: (provider: QueueProvider, queue: string) => Promise<void>;
}

/**
 * The one behaviour suite every provider passes. Features a provider declares unsupported in
 * its `capabilities` are skipped, and the reason is printed.
 */
export function describeQueueConformance(target: ConformanceTarget): void {
  // The cases run side by side (each on its own queue): most of their time is waiting on a
  // lease, a delay or a "nothing else ran" pause, so a serial run was mostly idle.
  describe.skipIf(target.skipReason !== undefined).concurrent(`queue conformance: ${target.name}`, () => {
    let provider: QueueProvider;
    /** The workers each running case started (an `afterEach` would close the other cases' too). */
    const caseWorkers = new AsyncLocalStorage<Worker<unknown, unknown>[]>();
    const capabilities = target.capabilities;
    const queueNames: string[] = [];
    /** Runs a case, then closes the workers it started. */
    const closingItsWorkers = (test: () => Promise<void>) => async () => {
      const workers: Worker<unknown, unknown>[] = [];
      try {
        await caseWorkers.run(workers, test);
      } finally {
        await Promise.all(workers.map((worker) => worker.close(200)));
      }
    };
    const it = (title: string, test: () => Promise<void>, timeoutMs?: number) =>
      vitestIt(title, closingItsWorkers(test), timeoutMs);
    /** `it`, skipped (with the reason printed) when the provider lacks one of `features`. */
    const itWith = (features: (keyof ProviderCapabilities)[], title: string, test: () => Promise<void>) => {
      const missing = features.filter((feature) => !capabilities[feature]);
      if (missing.length > 0) {
        console.log(
          `skipped on ${target.name}: "${title}" needs capabilities ${missing.join(', ')}, declared false`,
        );
      }
      vitestIt.skipIf(missing.length > 0)(title, closingItsWorkers(test));
    };

    beforeAll(async () => {
      provider = await target.create();
    });
    afterAll(async () => {
      if (target.cleanupQueue) for (const name of queueNames) await target.cleanupQueue(provider, name);
      await provider?.close();
    });

    /** For checks inside a test that the provider may not support; prints what was left out. */
    const supports = (feature: keyof ProviderCapabilities): boolean => {
      if (capabilities[feature]) return true;
      console.log(`on ${target.name}: part of a test left out, capabilities.${feature} = false`);
      return false;
    };
    const makeQueue = <Data = unknown>(schema?: z.ZodType<Data>, on: QueueProvider = provider) => {
      const name = uniqueName('mq');
      queueNames.push(name);
      return new Queue<Data>({ name, provider: on, ...(schema ? { schema } : {}) });
    };
    /** A handler that runs until its signal aborts, recording each run and the abort reason. */
    const untilAborted = () => {
      const seen = { runs: 0, reasons: [] as unknown[] };
      const handler = (job: Job<unknown>) => {
        seen.runs += 1;
        return new Promise<never>((_resolve, reject) => {
          job.signal.addEventListener('abort', () => {
            seen.reasons.push(job.signal.reason);
            reject(job.signal.reason);
          });
        });
      };
      return { seen, handler };
    };
    const startWorker = <Data, Result>(
      queue: Queue<Data>,
      handler: (job: Job<Jsonified<Data>>) => Promise<Result> | Result,
      options: Partial<WorkerOptions<Data, Result>> = {},
    ) => {
      const worker = new Worker<Data, Result>({
        queue,
        handler,
        leaseMs: 2_000,
        pollIntervalMs: 100,
        maintenanceIntervalMs: 200,
        ...options,
      });
      const workers = caseWorkers.getStore();
      if (!workers) throw new Error('startWorker outside a conformance case');
      workers.push(worker as Worker<unknown, unknown>);
      return worker;
    };

    it('processes a job and stores its result', async () => {
      const queue = makeQueue<{ n: number }>();
      const { id, added } = await queue.add('double', { n: 21 });
      expect(added).toBe(true);
      const done: unknown[] = [];
      startWorker(queue, (job) => job.data.n * 2).on('completed', (_id, result) => done.push(result));
      await waitFor(() => done.length === 1);
      expect(done).toEqual([42]);
      if (supports('getJob')) {
        const job = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'completed' ? info : undefined;
        });
        expect(job.result).toBe(42);
        expect(job.data).toEqual({ n: 21 });
      }
    });

    it('carries payloads and results as JSON: a Date as its ISO string, a Buffer as { type, data }, undefined fields dropped', async () => {
      const queue = makeQueue<{ at: Date; buf: Buffer; gone: undefined; kept: number }>();
      const { id } = await queue.add('json', {
        at: new Date(0),
        buf: Buffer.from('hi'),
        gone: undefined,
        kept: 1,
      });
      const seen: unknown[] = [];
      startWorker(queue, (job) => {
        seen.push(job.data);
        return { finished: new Date(1_000), nothing: undefined };
      });
      await waitFor(() => seen.length === 1);
      const expected = { at: '1970-01-01T00:00:00.000Z', buf: { type: 'Buffer', data: [104, 105] }, kept: 1 };
      expect(seen[0]).toStrictEqual(expected);
      if (supports('getJob')) {
        const job = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'completed' ? info : undefined;
        });
        expect(job.data).toStrictEqual(expected);
        expect(job.result).toStrictEqual({ finished: '1970-01-01T00:00:01.000Z' });
      }
    });

    itWith(['priorities'], 'runs higher priority first, then in insertion order', async () => {
      const queue = makeQueue<{ n: number }>();
      await queue.pause();
      const priorities = [0, 5, 1, 5, 0, 10, 1];
      for (const [n, priority] of priorities.entries()) await queue.add('p', { n }, { priority });
      const order: number[] = [];
      startWorker(queue, (job) => {
        order.push(job.data.n);
      });
      await queue.resume();
      await waitFor(() => order.length === priorities.length);
      expect(order).toEqual([5, 1, 3, 2, 6, 0, 4]);
    });

    it('does not run a delayed job before its delay', async () => {
      const queue = makeQueue();
      const addedAt = Date.now();
      // Long enough that the count below is read before it is due, with other cases and other
      // test files running (1 s passed before the count on a loaded machine).
      await queue.add('later', null, { delay: 3_000 });
      const startedAt: number[] = [];
      startWorker(queue, () => {
        startedAt.push(Date.now());
      });
      if (supports('exactCounts')) expect((await queue.counts()).delayed).toBe(1);
      await waitFor(() => startedAt.length === 1, 10_000);
      expect(startedAt[0]! - addedAt).toBeGreaterThanOrEqual(2_990);
    });

    it('retries with backoff and keeps the error history', async () => {
      const queue = makeQueue();
      const attempts: number[] = [];
      const seenErrors: number[] = [];
      const { id } = await queue.add('flaky', null, { attempts: 3, backoff: { type: 'fixed', delayMs: 50 } });
      const times: number[] = [];
      startWorker(queue, (job) => {
        attempts.push(job.attempt);
        seenErrors.push(job.errors.length);
        times.push(Date.now());
        if (job.attempt < 3) throw new Error(`boom ${job.attempt}`);
        return 'ok';
      });
      await waitFor(() => attempts.length === 3);
      expect(attempts).toEqual([1, 2, 3]);
      expect(seenErrors).toEqual([0, 1, 2]);
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(45);
      if (supports('getJob')) {
        const job = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'completed' ? info : undefined;
        });
        expect(job.errors.map((error) => error.message)).toEqual(['boom 1', 'boom 2']);
      }
    });

    it('keeps any string payload through delays, retries and cancel (lone surrogates, NUL, nested JSON)', async () => {
      const queue = makeQueue();
      // A split emoji (user input cut with slice()) leaves a lone surrogate; JSON carries it as an escape.
      const data = {
        text: 'Hi 🌍'.slice(0, 4),
        low: '\uDC00',
        nul: 'a\u0000b',
        line: '\u2028',
        deep: [[[[{}]]]],
      };
      const seen: unknown[] = [];
      const retried = await queue.add('retried', data, {
        delay: 30,
        attempts: 2,
        backoff: { type: 'fixed', delayMs: 30 },
      });
      const cancelled = await queue.add('cancelled', data, { delay: 60_000 });
      if (supports('cancel')) expect(await queue.cancel(cancelled.id)).toBe('removed');
      startWorker(queue, (job) => {
        seen.push(job.data);
        if (job.attempt === 1) throw new Error('once');
        return job.data;
      });
      await waitFor(() => seen.length === 2, 5_000, 'the delayed job to run twice');
      expect(seen).toEqual([data, data]);
      if (supports('getJob')) {
        const job = await waitFor(async () => {
          const info = await queue.getJob(retried.id);
          return info?.state === 'completed' ? info : undefined;
        });
        expect(job.result).toEqual(data);
      }
    });

    itWith(
      ['getJob'],
      'a retried job shows when it runs again (availableAt, also what queue-wait is measured from)',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('later', null, {
          attempts: 2,
          backoff: { type: 'fixed', delayMs: 60_000 },
        });
        const failedAt: number[] = [];
        startWorker(queue, () => {
          failedAt.push(Date.now());
          throw new Error('not yet');
        });
        const job = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'delayed' ? info : undefined;
        });
        expect(job.attemptsMade).toBe(1);
        expect(job.availableAt).toBeGreaterThanOrEqual(failedAt[0]! + 60_000);
      },
    );

    it('keeps a deeply nested payload (3,000 levels) through a delay and a retry', async () => {
      const queue = makeQueue();
      let deep: unknown = 'leaf';
      for (let level = 0; level < 3_000; level += 1) deep = [deep];
      const depthOf = (value: unknown): number => {
        let depth = 0;
        for (let node = value; Array.isArray(node); node = node[0]) depth += 1;
        return depth;
      };
      await queue.add('deep', deep, { delay: 30, attempts: 2, backoff: { type: 'fixed', delayMs: 30 } });
      const depths: number[] = [];
      startWorker(queue, (job) => {
        depths.push(depthOf(job.data));
        if (job.attempt === 1) throw new Error('once');
      });
      await waitFor(() => depths.length === 2, 5_000, 'the nested job to run twice');
      expect(depths).toEqual([3_000, 3_000]);
    });

    it("every try, getJob and the DLQ see the payload as added, whatever a failed try's handler did to job.data", async () => {
      interface Order {
        count: number;
        items: number[];
        customer: { name: string; tags: string[] };
        note?: string;
      }
      const queue = makeQueue<Order>();
      const added: Order = { count: 0, items: [1, 2, 3], customer: { name: 'Ada', tags: ['vip'] } };
      const { id } = await queue.add('edits', added, {
        attempts: 3,
        backoff: { type: 'fixed', delayMs: 10 },
      });
      const seen: unknown[] = [];
      const seenByGetJob: unknown[] = [];
      const failures: boolean[] = [];
      const worker = startWorker(queue, async (job) => {
        seen.push(structuredClone(job.data));
        // In place, nested and top-level, as a handler that consumes its payload does.
        job.data.count += 1;
        job.data.items.pop();
        job.data.customer.name = 'changed';
        job.data.customer.tags.push('edited');
        job.data.note = 'added by the handler';
        if (capabilities.getJob) seenByGetJob.push((await queue.getJob(id))?.data);
        throw new Error(`try ${job.attempt} failed`);
      });
      worker.on('failed', (_id, _error, willRetry) => failures.push(willRetry));
      await waitFor(() => failures.length === 3, 10_000, 'three failed tries');
      expect(failures).toEqual([true, true, false]);
      expect(seen).toEqual([added, added, added]);
      if (supports('getJob')) {
        expect(seenByGetJob).toEqual([added, added, added]);
        const dead = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'failed' ? info : undefined;
        });
        expect(dead.data).toEqual(added);
        expect(dead.errors.map((error) => error.message)).toEqual([
          'try 1 failed',
          'try 2 failed',
          'try 3 failed',
        ]);
      }
      if (supports('dlqInspect')) {
        const [entry] = await queue.dlq.list();
        expect(entry?.id).toBe(id);
        expect(entry?.data).toEqual(added);
      }
    });

    itWith(
      ['progress', 'getJob'],
      'the progress a failed try stored is what the next try reads back (state carried to a retry)',
      async () => {
        const queue = makeQueue<{ items: string[] }>();
        const { id } = await queue.add(
          'resumable',
          { items: ['a', 'b', 'c'] },
          { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
        );
        const resumedAt: unknown[] = [];
        const sent: string[] = [];
        startWorker(queue, async (job) => {
          const stored = (await queue.getJob(job.id))?.progress as { done: number } | undefined;
          const done = stored?.done ?? 0;
          resumedAt.push(done);
          // One item per try, then a failure: the next try resumes after it.
          const item = job.data.items[done];
          if (item === undefined) return sent;
          sent.push(item);
          await job.progress({ done: done + 1 });
          throw new Error('interrupted');
        });
        const job = await waitFor(async () => {
          const info = await queue.getJob(id);
          return info?.state === 'failed' ? info : undefined;
        });
        expect(resumedAt).toEqual([0, 1, 2]);
        expect(sent).toEqual(['a', 'b', 'c']);
        expect(job.progress).toEqual({ done: 3 });
        expect(job.data).toEqual({ items: ['a', 'b', 'c'] });
      },
    );

    it('dead-letters after the last attempt, and redrives and purges the DLQ', async () => {
      const queue = makeQueue<{ healthy: boolean }>();
      let healthy = false;
      const runs: string[] = [];
      const { id } = await queue.add(
        'doomed',
        { healthy: false },
        { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
      );
      const failures: boolean[] = [];
      const worker = startWorker(queue, (job) => {
        runs.push(job.id);
        if (!healthy) throw new Error('still broken');
        return 'fixed';
      });
      worker.on('failed', (_id, _error, willRetry) => failures.push(willRetry));
      await waitFor(() => failures.length === 2);
      expect(failures).toEqual([true, false]);
      if (supports('dlqInspect')) {
        const dead = await waitFor(async () => {
          const list = await queue.dlq.list();
          return list.length === 1 ? list : undefined;
        });
        expect(dead[0]!.id).toBe(id);
        expect(dead[0]!.state).toBe('failed');
        expect(dead[0]!.errors.map((error) => error.message)).toEqual(['still broken', 'still broken']);
        healthy = true;
        expect(await queue.dlq.retry(id)).toBe(true);
        await waitFor(() => runs.length === 3);
        await waitFor(async () => (await queue.getJob(id))?.state === 'completed');
        expect(await queue.dlq.list()).toEqual([]);
        healthy = false;
        await queue.add('doomed', { healthy: false }, { jobId: 'second', attempts: 1 });
        await waitFor(async () => (await queue.dlq.list()).length === 1);
        expect(await queue.dlq.purge()).toBe(1);
        expect(await queue.getJob('second')).toBeUndefined();
      }
    });

    itWith(
      ['exactCounts', 'getJob'],
      'bounds completed and dead jobs by count and age (retention)',
      async () => {
        const queue = makeQueue<{ ok: boolean }>();
        const ok = await queue.addBulk(Array.from({ length: 5 }, () => ({ name: 'ok', data: { ok: true } })));
        await queue.add('bad', { ok: false }, { attempts: 1 });
        startWorker(
          queue,
          (job) => {
            if (!job.data.ok) throw new Error('bad');
          },
          { maintenanceIntervalMs: 60_000 },
        );
        await waitFor(async () => {
          const counts = await queue.counts();
          return counts.completed === 5 && counts.failed === 1;
        });
        const removed = await queue.clean({ completedCount: 2 });
        expect(removed.removed).toBe(3);
        expect(await queue.counts()).toMatchObject({ completed: 2, failed: 1 });
        const kept = await Promise.all(ok.map(({ id }) => queue.getJob(id)));
        expect(kept.filter((job) => job !== undefined)).toHaveLength(2);
        await sleep(5);
        expect((await queue.clean({ deadAgeMs: 0 })).removed).toBe(1);
        expect((await queue.counts()).failed).toBe(0);
      },
    );

    itWith(
      ['dedupe', 'exactCounts'],
      'dedupes a jobId while the job is retained, and takes it again once retention removed it',
      async () => {
        const queue = makeQueue<number>();
        const seen: number[] = [];
        startWorker(queue, (job) => {
          seen.push(job.data);
        });
        expect((await queue.add('once', 1, { jobId: 'kept' })).added).toBe(true);
        await waitFor(async () => (await queue.counts()).completed === 1, 5_000, 'the first run');
        // Completed and retained: still held.
        expect((await queue.add('once', 2, { jobId: 'kept' })).added).toBe(false);
        expect(await queue.clean({ completedCount: 0 })).toMatchObject({ removed: 1 });
        expect((await queue.add('once', 3, { jobId: 'kept' })).added).toBe(true);
        await waitFor(() => seen.length === 2, 5_000, 'the second run');
        expect(seen).toEqual([1, 3]);
      },
    );

    itWith(['dedupe'], 'dedupes by jobId', async () => {
      const queue = makeQueue();
      const first = await queue.add('once', 1, { jobId: 'order-1' });
      const second = await queue.add('once', 2, { jobId: 'order-1' });
      const bulk = await queue.addBulk([
        { name: 'once', data: 3, options: { jobId: 'order-1' } },
        { name: 'once', data: 4, options: { jobId: 'order-2' } },
        // The same id twice in one batch (bullmq #458: addBulk ignored jobId): the first item wins.
        { name: 'once', data: 5, options: { jobId: 'order-3' } },
        { name: 'once', data: 6, options: { jobId: 'order-3' } },
      ]);
      expect([first.added, second.added, ...bulk.map((result) => result.added)]).toEqual([
        true,
        false,
        false,
        true,
        true,
        false,
      ]);
      const seen: unknown[] = [];
      startWorker(queue, (job) => {
        seen.push(job.data);
      });
      await waitFor(() => seen.length === 3);
      await sleep(100);
      expect(seen.sort()).toEqual([1, 4, 5]);
    });

    it('pauses and resumes', async () => {
      const queue = makeQueue();
      await queue.pause();
      await queue.add('held', null);
      const seen: string[] = [];
      startWorker(queue, (job) => {
        seen.push(job.id);
      });
      await sleep(300);
      expect(seen).toEqual([]);
      if (supports('exactCounts')) expect(await queue.counts()).toMatchObject({ waiting: 1, paused: true });
      await queue.resume();
      await waitFor(() => seen.length === 1);
    });

    itWith(['cancel'], 'cancels a waiting job and an active one (its signal aborts, no retry)', async () => {
      const queue = makeQueue();
      const waiting = await queue.add('w', null, { delay: 60_000 });
      expect(await queue.cancel(waiting.id)).toBe('removed');
      const active = await queue.add('a', null, { attempts: 5 });
      let reason: unknown;
      let runs = 0;
      startWorker(queue, (job) => {
        runs += 1;
        return new Promise((_resolve, reject) => {
          job.signal.addEventListener('abort', () => {
            reason = job.signal.reason;
            reject(job.signal.reason);
          });
        });
      });
      await waitFor(() => runs === 1);
      await waitFor(async () => (await queue.cancel(active.id)) === 'signalled');
      await waitFor(() => reason !== undefined);
      expect(reason).toBeInstanceOf(JobCancelledError);
      if (supports('getJob')) {
        await waitFor(async () => (await queue.getJob(active.id))?.state === 'failed');
        expect((await queue.getJob(waiting.id))?.state).toBe('failed');
      }
      await sleep(100);
      expect(runs).toBe(1);
    });

    itWith(
      ['cancel'],
      'cancels an active job whose cancel message is lost: the lease heartbeat aborts it (no retry)',
      async () => {
        // The worker never hears the cancel message: only the backend's record can reach it.
        const queue = makeQueue(undefined, dropCancelMessages(provider));
        const { id } = await queue.add('a', null, { attempts: 5 });
        const { seen, handler } = untilAborted();
        // Heartbeats (every leaseMs / 3) bring the cancel. Not shorter: with 300 ms a loaded
        // machine delayed a renewal past the lease (CI-like load, 2 of 5 backends in one run): the
        // worker gave the job up (LeaseLostError, not the cancel), or the lease ended in the store
        // before the cancel (which then found the job waiting: 'removed').
        const leaseMs = 1_500;
        const failed: boolean[] = [];
        startWorker(queue, handler, { leaseMs }).on('failed', (_id, _error, willRetry) =>
          failed.push(willRetry),
        );
        await waitFor(() => seen.runs === 1);
        expect(await queue.cancel(id)).toBe('signalled');
        // Only a heartbeat can bring it (the message is dropped): the wait is a bound, not a measure.
        await waitFor(() => seen.reasons.length === 1, 10_000, 'the abort');
        expect(seen.reasons[0]).toBeInstanceOf(JobCancelledError);
        await waitFor(() => failed.length === 1);
        expect(failed).toEqual([false]);
        if (supports('getJob')) {
          await waitFor(async () => (await queue.getJob(id))?.state === 'failed');
          expect((await queue.getJob(id))?.errors.at(-1)?.name).toBe('JobCancelledError');
        }
        // Past the lease: a job recovered for its lease would have run again by now.
        await sleep(2 * leaseMs);
        expect(seen.runs).toBe(1);
      },
    );

    itWith(
      ['cancel', 'getJob'],
      'a leased-ahead job whose cancel message is lost is settled as cancelled without running',
      async () => {
        const queue = makeQueue<string>(undefined, dropCancelMessages(provider));
        await queue.add('first', 'first');
        const ahead = await queue.add('ahead', 'ahead', { attempts: 5 });
        const started: string[] = [];
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const failed: [string, unknown, boolean][] = [];
        startWorker(
          queue,
          async (job) => {
            started.push(job.data);
            if (job.data === 'first') await gate;
          },
          // Heartbeats (every leaseMs / 3) bring the cancel; a lease this long does not expire
          // while a loaded machine delays one, which would recover 'first' and run it again.
          { concurrency: 1, prefetch: 1, leaseMs: 1_500 },
        ).on('failed', (id, error, willRetry) => failed.push([id, error, willRetry]));
        await waitFor(() => started.length === 1);
        // 'ahead' is leased (active in the backend) while 'first' holds the only slot.
        await waitFor(async () => (await queue.getJob(ahead.id))?.state === 'active');
        expect(await queue.cancel(ahead.id)).toBe('signalled');
        await waitFor(() => failed.length === 1, 10_000, 'the cancelled leased-ahead job to settle');
        expect(failed[0]![0]).toBe(ahead.id);
        expect(failed[0]![1]).toBeInstanceOf(JobCancelledError);
        expect(failed[0]![2]).toBe(false);
        release();
        await waitFor(async () => (await queue.getJob(ahead.id))?.state === 'failed');
        await sleep(300);
        expect(started).toEqual(['first']);
      },
    );

    itWith(['cancel', 'dlqInspect'], 'a redriven, previously cancelled job runs to completion', async () => {
      const queue = makeQueue();
      const { id } = await queue.add('a', null);
      // Not shorter: a heartbeat delayed past the lease by a loaded machine recovers the second
      // run and runs the job a third time.
      const leaseMs = 1_000;
      let runs = 0;
      const reasons: unknown[] = [];
      startWorker(
        queue,
        async (job) => {
          runs += 1;
          if (runs === 1) {
            await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
            reasons.push(job.signal.reason);
            throw job.signal.reason;
          }
          // Long enough for several lease heartbeats: an old cancel record would abort this run.
          await sleep(4 * (leaseMs / 3));
          if (job.signal.aborted) throw job.signal.reason;
          return 'done';
        },
        { leaseMs },
      );
      await waitFor(() => runs === 1);
      expect(await queue.cancel(id)).toBe('signalled');
      await waitFor(() => reasons.length === 1);
      expect(reasons[0]).toBeInstanceOf(JobCancelledError);
      await waitFor(async () => (await queue.dlq.list()).some((job) => job.id === id));
      expect(await queue.dlq.retry(id)).toBe(true);
      const done = await waitFor(async () => {
        const info = await queue.getJob(id);
        return info?.state === 'completed' || info?.state === 'failed' ? info : undefined;
      }, 10_000);
      expect(done.state).toBe('completed');
      expect(done.result).toBe('done');
      expect(runs).toBe(2);
    });

    itWith(
      ['cancel', 'leaseRecovery', 'getJob'],
      'lease recovery dead-letters (as cancelled) an active job cancelled after its worker died',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('a', null, { attempts: 5 });
        // A worker leases the job and dies (no heartbeat, no settle).
        const leaseMs = 1_000;
        const leased = await waitFor(async () => {
          const now = Date.now();
          const { jobs } = await provider.exchange(queue.name, {
            settle: [],
            fetch: 1,
            leaseUntil: now + leaseMs,
            now,
            promoteDelayed: true,
            groupWeights: {},
            defaultGroupWeight: 1,
          });
          return jobs.length > 0 ? jobs : undefined;
        });
        expect(leased.map((job) => job.id)).toEqual([id]);
        expect(await queue.cancel(id)).toBe('signalled');
        const retention = {
          completedCount: 1_000,
          completedAgeMs: 3_600_000,
          deadCount: 1_000,
          deadAgeMs: 0,
        };
        // Retention never drops the cancel record of a job still active (its lease is live here).
        expect(await provider.maintain(queue.name, Date.now(), 3, retention)).toMatchObject({
          recovered: 0,
          deadLettered: 0,
        });
        // Once the lease has expired (by the backend's clock where it keeps one: Redis TIME).
        const result = await waitFor(
          async () => {
            const pass = await provider.maintain(queue.name, Date.now(), 3, {
              ...retention,
              deadAgeMs: 3_600_000,
            });
            return pass.recovered + pass.deadLettered > 0 ? pass : undefined;
          },
          5_000,
          'the lease to expire',
        );
        expect(result).toMatchObject({ recovered: 0, deadLettered: 1 });
        const info = await queue.getJob(id);
        expect(info?.state).toBe('failed');
        expect(info?.errors.at(-1)?.name).toBe('JobCancelledError');
        // Never run again.
        const { seen, handler } = untilAborted();
        startWorker(queue, handler);
        await sleep(300);
        expect(seen.runs).toBe(0);
      },
    );

    itWith(
      ['cancel', 'getJob'],
      'close() dead-letters (as cancelled) a running job whose cancel it never heard, instead of releasing it',
      async () => {
        const queue = makeQueue(undefined, dropCancelMessages(provider));
        const { id } = await queue.add('a', null, { attempts: 5 });
        const { seen, handler } = untilAborted();
        const registry = new Registry();
        // A long lease: no heartbeat runs before close().
        const worker = startWorker(queue, handler, { leaseMs: 60_000, registry });
        await waitFor(() => seen.runs === 1);
        expect(await queue.cancel(id)).toBe('signalled');
        await worker.close(50);
        const info = await waitFor(async () => {
          const job = await queue.getJob(id);
          return job?.state === 'failed' ? job : undefined;
        });
        expect(info.errors.at(-1)?.name).toBe('JobCancelledError');
        // Moved to the DLQ by this worker's close(): counted as every such move is.
        expect(await registry.metrics()).toContain(
          `noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 1`,
        );
        const again = untilAborted();
        startWorker(queue, again.handler);
        await sleep(300);
        expect(again.seen.runs).toBe(0);
      },
    );

    itWith(['progress', 'getJob'], 'stores progress', async () => {
      const queue = makeQueue();
      const { id } = await queue.add('long', null);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      startWorker(queue, async (job) => {
        await job.progress({ percent: 50 });
        await gate;
      });
      await waitFor(async () => (await queue.getJob(id))?.progress !== undefined);
      expect((await queue.getJob(id))?.progress).toEqual({ percent: 50 });
      release();
    });

    itWith(
      ['progress', 'getJob', 'dedupe'],
      'a progress written after its job was removed is not stored: a job re-added with that id has none',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('short', null, { jobId: 'reported-late', removeOnComplete: true });
        let finished: Job<unknown> | undefined;
        const worker = startWorker(queue, (job) => {
          finished = job;
        });
        await waitFor(async () => finished !== undefined && (await queue.getJob(id)) === undefined);
        await worker.close();
        // A handler's un-awaited progress call (or one from a run that outlived its timeout) lands late.
        await finished?.progress({ percent: 99 });
        expect((await queue.add('short', null, { jobId: 'reported-late' })).added).toBe(true);
        expect((await queue.getJob(id))?.progress).toBeUndefined();
      },
    );

    it('aborts a job at its timeout and reuses the slot', async () => {
      const queue = makeQueue();
      await queue.add('stuck', null, { timeout: 100, attempts: 1 });
      await queue.add('next', null);
      let reason: unknown;
      const started: string[] = [];
      startWorker(
        queue,
        (job) => {
          started.push(job.name);
          if (job.name === 'next') return 'ok';
          return new Promise(() => {
            job.signal.addEventListener('abort', () => {
              reason = job.signal.reason;
            });
          });
        },
        { concurrency: 1 },
      );
      await waitFor(() => started.includes('next'), 5_000, 'the second job to get the freed slot');
      expect(reason).toBeInstanceOf(JobTimeoutError);
    });

    it('rejects a bad payload at add, naming the field, before enqueueing', async () => {
      const queue = makeQueue(z.object({ email: z.email(), count: z.number().int() }));
      const bad = { email: 'not-an-email', count: 1 } as unknown as { email: string; count: number };
      await expect(queue.add('mail', bad)).rejects.toThrow(InvalidPayloadError);
      await expect(
        queue.addBulk([
          { name: 'mail', data: { email: 'a@b.co', count: 1 } },
          { name: 'mail', data: bad },
        ]),
      ).rejects.toMatchObject({ fields: ['jobs.1.data.email'] });
      if (supports('exactCounts')) expect((await queue.counts()).waiting).toBe(0);
    });

    it('rejects a payload JSON cannot carry (BigInt, a cycle) at add, before enqueueing any of the batch', async () => {
      const queue = makeQueue();
      const cyclic: Record<string, unknown> = { name: 'loop' };
      cyclic.self = cyclic;
      for (const bad of [{ amount: 10n }, cyclic]) {
        await expect(
          queue.addBulk([
            { name: 'first', data: { ok: true } },
            { name: 'bad', data: bad },
          ]),
        ).rejects.toThrow(InvalidPayloadError);
      }
      await queue.add('marker', null);
      const seen: string[] = [];
      startWorker(queue, (job) => {
        seen.push(job.name);
      });
      await waitFor(() => seen.includes('marker'));
      await sleep(100);
      expect(seen).toEqual(['marker']);
    });

    it('fails a job whose result JSON cannot carry (BigInt, a cycle) and keeps the worker running', async () => {
      const queue = makeQueue<{ n: number }>();
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const failures: { id: string; code: unknown; field: unknown; willRetry: boolean }[] = [];
      const completed: string[] = [];
      const worker = startWorker(queue, (job) => {
        if (job.name === 'bigint') return { n: 1n };
        if (job.name === 'cyclic') return cyclic;
        return job.data.n;
      });
      worker.on('failed', (id, error, willRetry) =>
        failures.push({
          id,
          code: (error as { code?: unknown }).code,
          field: (error as { field?: unknown }).field,
          willRetry,
        }),
      );
      worker.on('completed', (id) => completed.push(id));
      const bigint = await queue.add(
        'bigint',
        { n: 0 },
        { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
      );
      const cycle = await queue.add('cyclic', { n: 0 }, { attempts: 1 });
      const good: string[] = [];
      for (let n = 1; n <= 10; n += 1) good.push((await queue.add('good', { n })).id);
      await waitFor(
        () => failures.length === 3 && completed.length === 10,
        10_000,
        'failures and completions',
      );
      expect(completed.sort()).toEqual(good.sort());
      expect(
        failures.filter((failure) => failure.id === bigint.id).map((failure) => failure.willRetry),
      ).toEqual([true, false]);
      expect(failures.find((failure) => failure.id === cycle.id)?.willRetry).toBe(false);
      for (const failure of failures) {
        expect(failure).toMatchObject({ code: 'NOA_MQ_RESULT_NOT_SERIALIZABLE', field: 'result' });
      }
      if (supports('getJob')) {
        const info = await waitFor(async () => {
          const job = await queue.getJob(bigint.id);
          return job?.state === 'failed' ? job : undefined;
        });
        expect(info.errors.map((error) => error.code)).toEqual([
          'NOA_MQ_RESULT_NOT_SERIALIZABLE',
          'NOA_MQ_RESULT_NOT_SERIALIZABLE',
        ]);
        expect(info.errors[0]!.message).toContain('result');
      }
    }, 15_000);

    it('keeps the message and code of a handler that throws a plain object', async () => {
      const queue = makeQueue();
      const failed: Error[] = [];
      startWorker(queue, () => {
        throw { code: 'E_QUOTA', message: 'quota exceeded' };
      }).on('failed', (_id, error) => failed.push(error));
      const { id } = await queue.add('plain', null, { attempts: 1 });
      await waitFor(() => failed.length === 1);
      expect(failed[0]!.message).toBe('quota exceeded');
      expect((failed[0] as Error & { code?: string }).code).toBe('E_QUOTA');
      if (supports('getJob')) {
        const info = await waitFor(async () => {
          const job = await queue.getJob(id);
          return job?.state === 'failed' ? job : undefined;
        });
        expect(info.errors).toMatchObject([{ message: 'quota exceeded', code: 'E_QUOTA' }]);
      }
    });

    itWith(['flows'], 'runs a flow parent after its children, with their results', async () => {
      const queue = makeQueue<{ n: number }>();
      const flow = await queue.addFlow({
        name: 'sum',
        data: { n: 0 },
        children: [1, 2, 3].map((n) => ({ name: 'square', data: { n } })),
      });
      const parentSaw: unknown[] = [];
      startWorker(
        queue,
        async (job) => {
          if (job.name === 'square') return job.data.n * job.data.n;
          const { results } = await job.childrenResults();
          parentSaw.push(results);
          return Object.values(results as Record<string, number>).reduce((a, b) => a + b, 0);
        },
        { concurrency: 3 },
      );
      await waitFor(() => parentSaw.length === 1);
      expect(parentSaw[0]).toEqual(
        Object.fromEntries(flow.childIds.map((id, index) => [id, (index + 1) ** 2])),
      );
      await waitFor(async () => (await queue.getJob(flow.id))?.result === 14);
    });

    itWith(['flows'], 'applies the child failure policy of a flow (fail, ignore, continue)', async () => {
      const queue = makeQueue<{ ok: boolean }>();
      const children = [
        { name: 'child', data: { ok: true } },
        { name: 'child', data: { ok: false }, options: { attempts: 1 } },
      ];
      const failFlow = await queue.addFlow({
        name: 'parent',
        data: { ok: true },
        children,
        onChildFailure: 'fail',
      });
      const ignoreFlow = await queue.addFlow({
        name: 'parent',
        data: { ok: true },
        children,
        onChildFailure: 'ignore',
      });
      const continueFlow = await queue.addFlow({
        name: 'parent',
        data: { ok: true },
        children,
        onChildFailure: 'continue',
      });
      const parents = new Map<string, { results: number; failures: number }>();
      startWorker(
        queue,
        async (job) => {
          if (job.name === 'child') {
            if (!job.data.ok) throw new Error('child broke');
            return 'fine';
          }
          const { results, failures } = await job.childrenResults();
          parents.set(job.id, {
            results: Object.keys(results).length,
            failures: Object.keys(failures).length,
          });
          return 'parent done';
        },
        { concurrency: 4 },
      );
      await waitFor(() => parents.size === 2);
      expect(parents.get(ignoreFlow.id)).toEqual({ results: 1, failures: 0 });
      expect(parents.get(continueFlow.id)).toEqual({ results: 1, failures: 1 });
      const failedParent = await waitFor(async () => {
        const info = await queue.getJob(failFlow.id);
        return info?.state === 'failed' ? info : undefined;
      });
      expect(failedParent.errors.at(-1)?.code).toBe('NOA_MQ_CHILD_FAILED');
      expect(parents.has(failFlow.id)).toBe(false);
    });

    itWith(
      ['flows', 'getJob', 'dlqInspect'],
      "a parent dead-lettered by 'fail' and redriven runs at once with the results stored by its failure",
      async () => {
        const queue = makeQueue<{ role: string }>();
        let releaseSlow = (): void => {};
        const slowMayFinish = new Promise<void>((resolve) => {
          releaseSlow = resolve;
        });
        const flow = await queue.addFlow({
          name: 'parent',
          data: { role: 'parent' },
          onChildFailure: 'fail',
          children: [
            { name: 'child', data: { role: 'early' } },
            { name: 'child', data: { role: 'broken' }, options: { attempts: 1 } },
            { name: 'child', data: { role: 'late' } },
          ],
        });
        const [earlyId, , lateId] = flow.childIds;
        const parentSaw: unknown[] = [];
        startWorker(
          queue,
          async (job) => {
            if (job.data.role === 'parent') {
              parentSaw.push(await job.childrenResults());
              return 'parent ran';
            }
            if (job.data.role === 'early') return 'early';
            if (job.data.role === 'late') {
              await slowMayFinish;
              return 'late';
            }
            // The broken child fails once the early one has completed.
            await waitFor(async () => (await queue.getJob(earlyId!))?.state === 'completed', 5_000, 'early');
            throw new Error('broken child');
          },
          { concurrency: 3 },
        );
        await waitFor(
          async () => (await queue.getJob(flow.id))?.state === 'failed',
          5_000,
          'the parent dead',
        );
        releaseSlow();
        await waitFor(
          async () => (await queue.getJob(lateId!))?.state === 'completed',
          5_000,
          'the late child',
        );
        expect(parentSaw).toEqual([]);
        expect(await queue.dlq.retry(flow.id)).toBe(true);
        await waitFor(() => parentSaw.length === 1, 5_000, 'the redriven parent to run');
        // The early child's result, stored before the failure; the late one's, after it, is not.
        expect(parentSaw[0]).toEqual({ results: { [earlyId!]: 'early' }, failures: {} });
        await waitFor(
          async () => (await queue.getJob(flow.id))?.state === 'completed',
          5_000,
          'the parent done',
        );
      },
    );

    itWith(
      ['flows', 'getJob', 'leaseRecovery'],
      "counts and publishes a flow parent dead-lettered by 'fail' as dead-lettered, as its child",
      async () => {
        const queue = makeQueue<{ ok: boolean }>();
        const deadEvents: Record<string, unknown>[] = [];
        const listener = (message: unknown) => {
          const event = message as Record<string, unknown>;
          if (event.queue === queue.name) deadEvents.push(event);
        };
        diagnosticsChannel.subscribe('noa:message-queue:dead-lettered', listener);
        try {
          const flow = await queue.addFlow({
            name: 'parent',
            data: { ok: true },
            children: [{ name: 'child', data: { ok: false }, options: { attempts: 1 } }],
            onChildFailure: 'fail',
          });
          const registry = new Registry();
          const worker = startWorker(
            queue,
            (job) => {
              if (!job.data.ok) throw new Error('child broke');
              return 'ran';
            },
            { registry },
          );
          await waitFor(
            async () => (await queue.getJob(flow.id))?.state === 'failed',
            5_000,
            'the parent dead',
          );
          // Before: the child's event and count only; the parent moved to the DLQ unseen.
          await waitFor(() => deadEvents.length === 2, 5_000, 'two dead-lettered events');
          expect(deadEvents.map((event) => [event.jobId, event.name, event.attempt])).toEqual([
            [flow.childIds[0], 'child', 1],
            [flow.id, 'parent', 0],
          ]);
          const parentInfo = await queue.getJob(flow.id);
          expect(parentInfo?.errors.at(-1)).toMatchObject({
            code: 'NOA_MQ_CHILD_FAILED',
            attempt: 0,
            // Before: Redis and the state store left the child's message out.
            message: `child ${flow.childIds[0]} of job ${flow.id} failed: child broke`,
          });
          expect(deadEvents[1]?.error).toBe(parentInfo?.errors.at(-1)?.message);
          expect(await registry.metrics()).toContain(
            `noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 2`,
          );
          await worker.close();

          // A child dead-lettered by lease recovery (past maxStalls) takes its parent along:
          // counted in the pass's result and in the metric, as the child is.
          const stalledFlow = await queue.addFlow({
            name: 'parent',
            data: { ok: true },
            children: [{ name: 'child', data: { ok: true } }],
            onChildFailure: 'fail',
          });
          const other = new Queue({ name: queue.name, provider, registry });
          // The worker above would run the child: lease it from the provider instead, and die.
          const leased = await waitFor(
            async () => {
              const response = await provider.exchange(queue.name, {
                settle: [],
                fetch: 1,
                leaseUntil: Date.now() + 100,
                now: Date.now(),
                promoteDelayed: true,
                groupWeights: {},
                defaultGroupWeight: 1,
              });
              return response.jobs.length > 0 ? response.jobs : undefined;
            },
            5_000,
            'the child leased',
          );
          expect(leased.map((job) => job.id)).toEqual(stalledFlow.childIds);
          await sleep(300);
          expect(await other.clean({}, 0)).toMatchObject({ deadLettered: 1, parentsDeadLettered: 1 });
          expect((await queue.getJob(stalledFlow.id))?.state).toBe('failed');
          expect(await registry.metrics()).toContain(
            `noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 4`,
          );
        } finally {
          diagnosticsChannel.unsubscribe('noa:message-queue:dead-lettered', listener);
        }
      },
    );

    itWith(
      ['flows', 'cancel', 'getJob'],
      "counts and publishes a flow parent dead-lettered by a cancelled child ('fail'), waiting or running",
      async () => {
        const deadEvents: Record<string, unknown>[] = [];
        const listener = (message: unknown) => deadEvents.push(message as Record<string, unknown>);
        diagnosticsChannel.subscribe('noa:message-queue:dead-lettered', listener);
        try {
          // A waiting child cancelled: no worker call moved it, so the Queue that cancelled it
          // counts and publishes the parent (the child itself, removed by its owner, is not).
          const registry = new Registry();
          const queue = new Queue<{ hold: boolean }>({ name: uniqueName('mq'), provider, registry });
          queueNames.push(queue.name);
          const flow = await queue.addFlow({
            name: 'parent',
            data: { hold: false },
            children: [{ name: 'child', data: { hold: false }, options: { delay: 60_000 } }],
            onChildFailure: 'fail',
          });
          expect(await queue.cancel(flow.childIds[0]!)).toBe('removed');
          expect((await queue.getJob(flow.id))?.state).toBe('failed');
          const message = `child ${flow.childIds[0]} of job ${flow.id} failed: job ${flow.childIds[0]} was cancelled`;
          expect((await queue.getJob(flow.id))?.errors.at(-1)).toMatchObject({
            code: 'NOA_MQ_CHILD_FAILED',
            message,
          });
          // Before: no event and no count for the parent.
          expect(deadEvents.filter((event) => event.queue === queue.name)).toEqual([
            { queue: queue.name, jobId: flow.id, name: 'parent', error: message, attempt: 0 },
          ]);
          expect(await registry.metrics()).toContain(
            `noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 1`,
          );

          // A running child cancelled: its worker settles it as cancelled and reports the
          // parent with it, as for a child that failed its last try.
          const running = makeQueue<{ hold: boolean }>();
          const runningFlow = await running.addFlow({
            name: 'parent',
            data: { hold: false },
            children: [{ name: 'child', data: { hold: true } }],
            onChildFailure: 'fail',
          });
          const workerRegistry = new Registry();
          const { seen, handler } = untilAborted();
          startWorker(running, handler, { registry: workerRegistry });
          await waitFor(() => seen.runs === 1, 5_000, 'the child running');
          expect(await running.cancel(runningFlow.childIds[0]!)).toBe('signalled');
          await waitFor(
            async () => (await running.getJob(runningFlow.id))?.state === 'failed',
            5_000,
            'the parent dead',
          );
          await waitFor(
            () => deadEvents.filter((event) => event.queue === running.name).length === 2,
            5_000,
            'two dead-lettered events',
          );
          expect(
            deadEvents
              .filter((event) => event.queue === running.name)
              .map((event) => [event.jobId, event.name, event.attempt]),
          ).toEqual([
            [runningFlow.childIds[0], 'child', 1],
            [runningFlow.id, 'parent', 0],
          ]);
          expect(await workerRegistry.metrics()).toContain(
            `noa_message_queue_jobs_dead_lettered_total{queue="${running.name}"} 2`,
          );
        } finally {
          diagnosticsChannel.unsubscribe('noa:message-queue:dead-lettered', listener);
        }
      },
    );

    itWith(
      ['cancel', 'dlqInspect', 'leaseRecovery'],
      "an entry the backend writes (stalled, cancelled) has the job's attemptsMade as its attempt, on every provider",
      async () => {
        const queue = makeQueue<{ n: number }>();
        // Two jobs that fail their first try and wait for a retry a minute away.
        const { id: delayedId } = await queue.add(
          'x',
          { n: 1 },
          { attempts: 3, backoff: { type: 'fixed', delayMs: 60_000 } },
        );
        const { id: activeId } = await queue.add(
          'x',
          { n: 2 },
          { attempts: 3, backoff: { type: 'fixed', delayMs: 0 } },
        );
        const lease = (settle: Settlement[], leaseMs: number) =>
          provider.exchange(queue.name, {
            settle,
            fetch: 2,
            leaseUntil: Date.now() + leaseMs,
            now: Date.now(),
            promoteDelayed: true,
            groupWeights: {},
            defaultGroupWeight: 1,
          });
        const first: JobRecord[] = [];
        await waitFor(
          async () => {
            first.push(...(await lease([], 5_000)).jobs);
            if (first.length === 2) return true;
            await sleep(10);
            return undefined;
          },
          5_000,
          'both jobs leased',
        );
        expect(first.map((job) => job.id).sort()).toEqual([delayedId, activeId].sort());
        const failed = (record: JobRecord): Settlement => ({
          kind: 'fail',
          record: {
            ...record,
            attemptsMade: 1,
            errors: [{ attempt: 1, name: 'Error', message: 'first try', at: Date.now() }],
          },
          retryAt: record.id === delayedId ? Date.now() + 60_000 : Date.now(),
        });
        let settle = first.map(failed);
        // The retry of the second job leased (RabbitMQ delivers its new message a moment later).
        await waitFor(
          async () => {
            const response = await lease(settle, 150);
            settle = [];
            if (response.jobs.length > 0) return response.jobs;
            await sleep(10);
            return undefined;
          },
          5_000,
          'the retry leased',
        );
        // Cancelled while delayed, and while active under a worker that died: both dead-lettered.
        expect(await queue.cancel(delayedId)).toBe('removed');
        expect(await queue.cancel(activeId)).toBe('signalled');
        await sleep(300);
        expect(await queue.clean({}, 5)).toMatchObject({ deadLettered: 1 });
        const dead = new Map((await queue.dlq.list()).map((job) => [job.id, job]));
        // Before: the Redis-backed stores wrote attempt 0 here, memory the tries made (1).
        for (const id of [delayedId, activeId]) {
          expect(dead.get(id)?.errors.map((entry) => [entry.code ?? entry.name, entry.attempt])).toEqual([
            ['Error', 1],
            ['NOA_MQ_JOB_CANCELLED', 1],
          ]);
        }
      },
    );

    itWith(
      ['dedupe', 'getJob', 'cancel', 'dlqInspect'],
      'handles job ids with colons, braces, spaces, unicode and 512 characters',
      async () => {
        const queue = makeQueue<{ fail: boolean }>();
        const ids = ['a:b:c', '{other-tag}', '}{', 'two words 1', 'ünï-😀-\u6f22', '😀'.repeat(256), 'j:1 2'];
        await expect(queue.add('odd', { fail: false }, { jobId: 'x'.repeat(513) })).rejects.toMatchObject({
          code: 'NOA_CONFIG_INVALID',
          fields: ['jobId'],
        });
        for (const id of ids)
          expect((await queue.add('odd', { fail: false }, { jobId: id })).added).toBe(true);
        for (const id of ids)
          expect((await queue.add('odd', { fail: false }, { jobId: id })).added).toBe(false);
        const doomed = '{dead}: 💀';
        await queue.add('odd', { fail: true }, { jobId: doomed, attempts: 1 });
        const parked = 'parked {x} 😀';
        await queue.add('odd', { fail: false }, { jobId: parked, delay: 60_000 });
        expect(await queue.cancel(parked)).toBe('removed');
        const seen: string[] = [];
        let heal = false;
        startWorker(
          queue,
          (job) => {
            seen.push(job.id);
            if (job.data.fail && !heal) throw new Error('odd failure');
            return job.id;
          },
          { concurrency: 4 },
        );
        for (const id of ids) {
          const info = await waitFor(async () => {
            const job = await queue.getJob(id);
            return job?.state === 'completed' ? job : undefined;
          });
          expect(info.id).toBe(id);
          expect(info.result).toBe(id);
        }
        await waitFor(async () => (await queue.getJob(doomed))?.state === 'failed');
        expect((await queue.dlq.list()).map((job) => job.id).sort()).toEqual([doomed, parked].sort());
        heal = true;
        expect(await queue.dlq.retry(doomed)).toBe(true);
        await waitFor(async () => (await queue.getJob(doomed))?.result === doomed);
        expect(seen.filter((id) => id === parked)).toEqual([]);
      },
    );

    itWith(['flows'], 'refuses a flow whose jobs share an id, naming it, and adds nothing', async () => {
      const queue = makeQueue<number>();
      await expect(
        queue.addFlow({
          name: 'parent',
          data: 0,
          children: [
            { name: 'child', data: 1, options: { jobId: 'twin' } },
            { name: 'child', data: 2, options: { jobId: 'twin' } },
          ],
        }),
      ).rejects.toMatchObject({ code: 'NOA_CONFIG_INVALID', fields: ['children.1.options.jobId'] });
      await expect(
        queue.addFlow({
          name: 'parent',
          data: 0,
          options: { jobId: 'self' },
          children: [{ name: 'child', data: 1, options: { jobId: 'self' } }],
        }),
      ).rejects.toMatchObject({ code: 'NOA_CONFIG_INVALID', fields: ['children.0.options.jobId'] });
      if (supports('exactCounts'))
        expect(await queue.counts()).toMatchObject({ waiting: 0, waitingChildren: 0 });
    });

    itWith(['flows'], 'runs a flow whose parent has 10,000 children', async () => {
      const queue = makeQueue<number>();
      const flow = await queue.addFlow({
        name: 'parent',
        data: -1,
        children: Array.from({ length: 10_000 }, (_, n) => ({ name: 'child', data: n })),
      });
      expect(flow.added).toBe(true);
      expect(flow.childIds).toHaveLength(10_000);
      let parentSaw = -1;
      startWorker(
        queue,
        async (job) => {
          if (job.name === 'child') return job.data;
          parentSaw = Object.keys((await job.childrenResults()).results).length;
          return 'parent done';
        },
        { concurrency: 50 },
      );
      await waitFor(() => parentSaw >= 0, 60_000, 'the parent of 10,000 children');
      expect(parentSaw).toBe(10_000);
    });

    itWith(
      ['flows', 'dlqInspect', 'getJob'],
      'a dead child redriven while its parent waits is counted once',
      async () => {
        const queue = makeQueue<{ child: string }>();
        let releaseB!: () => void;
        let releaseC!: () => void;
        const gateB = new Promise<void>((resolve) => (releaseB = resolve));
        const gateC = new Promise<void>((resolve) => (releaseC = resolve));
        let aRuns = 0;
        let cDone = false;
        const parentRuns: { cDone: boolean; results: string[]; failures: string[] }[] = [];
        const flow = await queue.addFlow({
          name: 'parent',
          data: { child: '' },
          onChildFailure: 'continue',
          children: ['a', 'b', 'c'].map((child) => ({
            name: 'child',
            data: { child },
            options: { attempts: 1 },
          })),
        });
        startWorker(
          queue,
          async (job) => {
            if (job.name === 'parent') {
              const { results, failures } = await job.childrenResults();
              parentRuns.push({
                cDone,
                results: Object.keys(results).sort(),
                failures: Object.keys(failures),
              });
              return 'parent done';
            }
            if (job.data.child === 'a') {
              aRuns += 1;
              if (aRuns === 1) throw new Error('a broke');
              return 'a';
            }
            await (job.data.child === 'b' ? gateB : gateC);
            if (job.data.child === 'c') cDone = true;
            return job.data.child;
          },
          { concurrency: 4 },
        );
        const [aId, bId, cId] = flow.childIds as [string, string, string];
        await waitFor(async () => (await queue.getJob(aId))?.state === 'failed');
        expect(await queue.dlq.retry(aId)).toBe(true);
        await waitFor(async () => (await queue.getJob(aId))?.state === 'completed');
        releaseB();
        await waitFor(async () => (await queue.getJob(bId))?.state === 'completed');
        // Two of three children have settled (a twice: its failure, then its redriven run).
        await sleep(300);
        expect(parentRuns).toEqual([]);
        expect((await queue.getJob(flow.id))?.state).toBe('waiting-children');
        releaseC();
        await waitFor(() => parentRuns.length === 1);
        // The redriven child's outcome replaces its failure.
        expect(parentRuns[0]).toEqual({ cDone: true, results: [aId, bId, cId].sort(), failures: [] });
      },
    );

    itWith(
      ['flows', 'getJob', 'exactCounts'],
      'drain removes the flow parent whose waiting children it removed',
      async () => {
        const queue = makeQueue<number>();
        const flow = await queue.addFlow({
          name: 'parent',
          data: 0,
          children: [1, 2].map((n) => ({ name: 'child', data: n })),
        });
        const other = await queue.add('plain', 3);
        expect(await queue.counts()).toMatchObject({ waiting: 3, waitingChildren: 1 });
        expect(await queue.drain()).toBe(4);
        expect(await queue.counts()).toMatchObject({ waiting: 0, waitingChildren: 0 });
        expect(await queue.getJob(flow.id)).toBeUndefined();
        expect(await queue.getJob(other.id)).toBeUndefined();
        // The same flow can be added again: nothing of it is left to dedupe against.
        expect(
          (await queue.addFlow({ name: 'parent', data: 0, options: { jobId: flow.id }, children: [] })).added,
        ).toBe(true);
      },
    );

    itWith(['groups'], 'dispatches groups by weight', async () => {
      const queue = makeQueue<{ group: string }>();
      await queue.pause();
      const jobs = ['a', 'b', 'c'].flatMap((group) =>
        Array.from({ length: 60 }, () => ({ name: 'g', data: { group }, options: { group } })),
      );
      await queue.addBulk(jobs);
      const order: string[] = [];
      startWorker(
        queue,
        (job) => {
          order.push(job.data.group);
        },
        { concurrency: 1, groups: { weights: { a: 3, b: 2, c: 1 }, defaultWeight: 1 } },
      );
      await queue.resume();
      await waitFor(() => order.length >= 60);
      const first = order.slice(0, 60);
      const share = (group: string) => first.filter((value) => value === group).length;
      expect(share('a')).toBeGreaterThanOrEqual(27);
      expect(share('a')).toBeLessThanOrEqual(33);
      expect(share('b')).toBeGreaterThanOrEqual(17);
      expect(share('b')).toBeLessThanOrEqual(23);
      expect(share('c')).toBeGreaterThanOrEqual(7);
      expect(share('c')).toBeLessThanOrEqual(13);
    });

    itWith(['leaseRecovery'], 'recovers a job whose worker stopped heart-beating (stalled)', async () => {
      const queue = makeQueue();
      const { id } = await queue.add('orphan', { text: 'cut \uD83D' });
      // A "worker" that leases the job and then dies: it never settles nor renews the lease.
      const leased = await provider.exchange(queue.name, {
        settle: [],
        fetch: 1,
        leaseUntil: Date.now() + 150,
        now: Date.now(),
        promoteDelayed: true,
        groupWeights: {},
        defaultGroupWeight: 1,
      });
      expect(leased.jobs.map((job) => job.id)).toEqual([id]);
      const seen: string[] = [];
      startWorker(queue, (job) => {
        seen.push(job.id);
      });
      await waitFor(() => seen.length === 1, 5_000, 'the stalled job to be recovered');
      expect(seen).toEqual([id]);
    });

    itWith(
      ['leaseRecovery', 'dlqInspect'],
      'dead-letters a job stalled past maxStalls with a JobStalledError entry (code NOA_MQ_JOB_STALLED)',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('poison', null, { attempts: 3 });
        const failed = { attempt: 1, name: 'Error', message: 'first try', at: Date.now() };
        // One failed try first, so the stall is dead-lettered with the history it had.
        const first = await provider.exchange(queue.name, {
          settle: [],
          fetch: 1,
          leaseUntil: Date.now() + 2_000,
          now: Date.now(),
          promoteDelayed: true,
          groupWeights: {},
          defaultGroupWeight: 1,
        });
        expect(first.jobs.map((job) => job.id)).toEqual([id]);
        const record = first.jobs[0]!;
        // A "worker" that fails the first try, leases the retry and then dies holding it.
        let settle: Settlement[] = [
          { kind: 'fail', record: { ...record, attemptsMade: 1, errors: [failed] }, retryAt: Date.now() },
        ];
        const leased = await waitFor(
          async () => {
            const response = await provider.exchange(queue.name, {
              settle,
              fetch: 1,
              leaseUntil: Date.now() + 150,
              now: Date.now(),
              promoteDelayed: true,
              groupWeights: {},
              defaultGroupWeight: 1,
            });
            settle = [];
            // RabbitMQ delivers the retry's new message a moment later.
            if (response.jobs.length > 0) return response.jobs;
            await sleep(10);
            return undefined;
          },
          5_000,
          'the retry to be leased',
        );
        expect(leased.map((job) => job.id)).toEqual([id]);
        await sleep(300);
        // maxStalls 0: the first expiry is final.
        expect(await queue.clean({}, 0)).toMatchObject({ recovered: 0, deadLettered: 1 });
        const [dead] = await queue.dlq.list();
        expect(dead?.id).toBe(id);
        // attempt: the tries counted when the entry was written (a stall is not a try).
        expect(dead?.errors.map((entry) => [entry.name, entry.code, entry.message, entry.attempt])).toEqual([
          ['Error', undefined, 'first try', 1],
          ['JobStalledError', 'NOA_MQ_JOB_STALLED', 'job stalled more than 0 times', 1],
        ]);
      },
    );

    itWith(
      ['leaseRecovery', 'dlqInspect'],
      'dead-letters after maxStalls a job whose every run stalls its worker past leaseMs (the worker gives it back)',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('blocker', null, { attempts: 5 });
        // A worker whose lease renewals are never answered, as when each run blocks its event
        // loop past the lease (not blocked here: the suite's cases run concurrently). It finds
        // each lease expired, aborts the signal and gives the job back.
        const unanswered = new Proxy(provider, {
          get: (target, key) => {
            const value = Reflect.get(target, key, target) as unknown;
            if (typeof value !== 'function') return value;
            if (key === 'extendLeases') return () => new Promise(() => {});
            return value.bind(target);
          },
        });
        let runs = 0;
        const registry = new Registry();
        startWorker(
          new Queue({ name: queue.name, provider: unanswered }),
          (job) => {
            runs += 1;
            return new Promise((_resolve, reject) => {
              job.signal.addEventListener('abort', () => reject(job.signal.reason));
            });
          },
          // No maintenance pass gets there first: the give-back itself must count the stall.
          { leaseMs: 200, maxStalls: 1, maintenanceIntervalMs: 60_000, registry },
        );
        // Before: given back without counting a stall, it ran again and again, never dead-lettered.
        await waitFor(
          async () => (await queue.dlq.list()).length === 1,
          10_000,
          'the job to be dead-lettered',
        );
        const [dead] = await queue.dlq.list();
        expect(dead?.id).toBe(id);
        expect(dead?.errors.at(-1)).toMatchObject({ name: 'JobStalledError', code: 'NOA_MQ_JOB_STALLED' });
        expect(runs).toBe(2);
        // Counted as a maintenance pass counts what it recovers: two stalls, one dead-lettered.
        const metrics = await registry.metrics();
        expect(metrics).toContain(`noa_message_queue_jobs_stalled_total{queue="${queue.name}"} 2`);
        expect(metrics).toContain(`noa_message_queue_jobs_dead_lettered_total{queue="${queue.name}"} 1`);
      },
    );

    itWith(
      ['leaseRecovery', 'exactCounts'],
      'a stalled worker that fails the job after another worker completed it neither reruns nor dead-letters it',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('stolen', null, {
          attempts: 3,
          backoff: { type: 'fixed', delayMs: 0 },
        });
        const { id: lastId } = await queue.add('stolen-last-try', null, { attempts: 1 });
        // A "worker" that leases both jobs, stalls past its lease, and only then fails them.
        const lease = (fetch: number) =>
          provider.exchange(queue.name, {
            settle: [],
            fetch,
            leaseUntil: Date.now() + 150,
            now: Date.now(),
            promoteDelayed: true,
            groupWeights: {},
            defaultGroupWeight: 1,
          });
        const stale = await lease(2);
        expect(stale.jobs.map((job) => job.id)).toEqual([id, lastId]);
        const runs: string[] = [];
        startWorker(queue, (job) => {
          runs.push(job.id);
        });
        await waitFor(
          async () => (await queue.counts()).completed === 2,
          5_000,
          'both recovered and completed',
        );
        const now = Date.now();
        const late = await provider.exchange(queue.name, {
          settle: stale.jobs.map((record) => ({
            kind: 'fail' as const,
            record: {
              ...record,
              attemptsMade: 1,
              errors: [{ attempt: 1, name: 'Error', message: 'too late', at: now }],
            },
            retryAt: record.id === id ? now : null,
          })),
          fetch: 0,
          leaseUntil: now + 150,
          now,
          promoteDelayed: false,
          groupWeights: {},
          defaultGroupWeight: 1,
        });
        // Refused, and said so: the late worker must not report a failure (or a dead-letter) of
        // jobs another run completed.
        expect([...(late.stale ?? [])].sort()).toEqual([id, lastId].sort());
        await sleep(500);
        expect(runs.sort()).toEqual([id, lastId].sort());
        expect(await queue.counts()).toMatchObject({
          completed: 2,
          failed: 0,
          waiting: 0,
          delayed: 0,
          active: 0,
        });
        if (supports('getJob')) expect((await queue.getJob(id))?.state).toBe('completed');
      },
    );

    /**
     * A view of the provider for a worker that stalls: its lease renewals do nothing (as when a
     * blocked event loop delays its heartbeat past the lease). `track.leased` collects the records
     * it leased (with their lease tokens); `track.settled` turns true once a settlement of it
     * reached the backend, or its give-back (`release`) was answered. A frozen heartbeat still
     * "answers", but a loaded machine can hold the worker's event loop past `leaseMs` between two
     * of them: its own lease check then gives the job up, and a late failure goes back by
     * `release` (as a stall), not by an exchange. Counting only exchanges, the case waited 5 s for
     * a settlement that never came.
     */
    const frozenHeartbeat = (track: { leased: JobRecord[]; settled: boolean }) =>
      new Proxy(provider, {
        get: (target, key) => {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key === 'extendLeases') return async () => ({ cancelled: [], lost: [] });
          if (key === 'release') {
            return async (...args: Parameters<QueueProvider['release']>) => {
              const counted = await target.release(...args);
              track.settled = true;
              return counted;
            };
          }
          if (key === 'settleNow') {
            return (...args: Parameters<NonNullable<QueueProvider['settleNow']>>) => {
              const taken = target.settleNow?.(...args) ?? false;
              track.settled ||= taken;
              return taken;
            };
          }
          if (key !== 'exchange') return value.bind(target);
          return async (...args: Parameters<QueueProvider['exchange']>) => {
            const response = await target.exchange(...args);
            track.leased.push(...response.jobs);
            if (args[1].settle.length > 0) track.settled = true;
            return response;
          };
        },
      });

    /**
     * Two workers contend for one job: the first leases it and stalls past its 300 ms lease (its
     * heartbeat frozen, its handler waiting for `letFirstFinish`, then returning or throwing
     * `firstOutcome()`), the second recovers the job and runs `secondHandler`. With
     * `secondFrozen` the second worker stops heart-beating too (its lease: 500 ms).
     */
    const contendedJob = async (
      queue: Queue<unknown>,
      firstOutcome: () => unknown,
      secondHandler: () => Promise<unknown>,
      secondFrozen = false,
    ) => {
      const stalled = { leased: [] as JobRecord[], settled: false };
      const runs: string[] = [];
      let letFirstFinish = (): void => {};
      const firstMayFinish = new Promise<void>((resolve) => {
        letFirstFinish = resolve;
      });
      startWorker(
        new Queue({ name: queue.name, provider: frozenHeartbeat(stalled) }),
        async () => {
          runs.push('first');
          await firstMayFinish;
          return firstOutcome();
        },
        { leaseMs: 300, maintenanceIntervalMs: 60_000 },
      );
      await waitFor(() => runs.length === 1, 5_000, 'the first worker to start the job');
      startWorker(
        secondFrozen
          ? new Queue({ name: queue.name, provider: frozenHeartbeat({ leased: [], settled: false }) })
          : queue,
        async () => {
          runs.push('second');
          return secondHandler();
        },
        // Unfrozen, its lease must outlast the test's waits even with heartbeats delayed by a
        // loaded machine: recovered from it, the job would be run (or dead-lettered) again.
        secondFrozen
          ? { leaseMs: 500, prefetch: 0, maintenanceIntervalMs: 100 }
          : { leaseMs: 10_000, maintenanceIntervalMs: 100 },
      );
      await waitFor(() => runs.length === 2, 5_000, 'the second worker to recover and start the job');
      return { runs, stalled, letFirstFinish };
    };

    for (const outcome of ['complete', 'fail (retry)', 'fail (dead-letter)'] as const) {
      itWith(
        ['leaseRecovery', 'getJob', 'exactCounts'],
        `a worker that stalled past its lease cannot ${outcome} the job another worker now runs`,
        async () => {
          const queue = makeQueue();
          const { id } = await queue.add('contended', null, {
            attempts: outcome === 'fail (dead-letter)' ? 1 : 3,
            backoff: { type: 'fixed', delayMs: 0 },
          });
          let letSecondFinish = (): void => {};
          const secondMayFinish = new Promise<void>((resolve) => {
            letSecondFinish = resolve;
          });
          const { runs, stalled, letFirstFinish } = await contendedJob(
            queue,
            () => {
              if (outcome !== 'complete') throw new Error('late failure');
              return 'first';
            },
            async () => {
              await secondMayFinish;
              return 'second';
            },
          );
          letFirstFinish();
          await waitFor(() => stalled.settled, 5_000, 'the late outcome to reach the backend');
          await sleep(200);
          // The second run is untouched: still active, nothing completed, retried or dead-lettered.
          // Seen 'waiting' once (rabbitmq + redis cluster state, 'fail (retry)', loaded whole-package
          // run; not in 18 loaded loops of the case): the record says whether the late failure was
          // applied (an attempt and its error) or the job was recovered again (lease, stalls).
          const contended = await queue.getJob(id);
          expect(contended?.state, JSON.stringify({ ...contended, runs, stalled })).toBe('active');
          expect(await queue.counts()).toMatchObject({
            active: 1,
            waiting: 0,
            delayed: 0,
            completed: 0,
            failed: 0,
          });
          letSecondFinish();
          await waitFor(async () => (await queue.getJob(id))?.state === 'completed', 5_000, 'the second run');
          const done = await queue.getJob(id);
          expect(done?.result).toBe('second');
          // The late failure counted no attempt and left no error in the history.
          expect(done?.attemptsMade).toBe(0);
          expect(done?.errors).toEqual([]);
          await sleep(300);
          expect(runs).toEqual(['first', 'second']);
        },
      );
    }

    itWith(
      ['leaseRecovery'],
      'a worker that stalled past its lease cannot renew the lease of the worker now running the job',
      async () => {
        const queue = makeQueue();
        const { id } = await queue.add('contended', null);
        const { runs, stalled } = await contendedJob(
          queue,
          () => 'first',
          () => new Promise<never>(() => {}),
          true,
        );
        const staleLease = stalled.leased.find((record) => record.id === id);
        expect(staleLease).toBeDefined();
        // The stalled first worker's heartbeat comes back and pushes its lease an hour ahead.
        const renewal = await provider.extendLeases(
          queue.name,
          [staleLease!],
          Date.now() + 3_600_000,
          Date.now(),
        );
        expect(renewal.lost).toEqual([id]);
        // Had that renewed the second worker's lease, the second worker (which has stopped
        // heart-beating) would hold the job for an hour; its 500 ms lease expires instead, and a
        // third worker recovers and runs the job.
        const third: string[] = [];
        startWorker(queue, (job) => {
          third.push(job.id);
        });
        await waitFor(() => third.length === 1, 10_000, 'a third worker to recover the job');
        expect(runs).toEqual(['first', 'second']);
      },
    );

    it('closes gracefully: releases jobs still running at the deadline for redelivery', async () => {
      const queue = makeQueue();
      await queue.addBulk(Array.from({ length: 4 }, (_, n) => ({ name: n < 2 ? 'quick' : 'slow', data: n })));
      const seenBy: Record<string, string[]> = { first: [], second: [] };
      const aborted: unknown[] = [];
      const first = startWorker(
        queue,
        async (job) => {
          seenBy.first!.push(job.name);
          if (job.name === 'slow') {
            await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
            aborted.push(job.signal.reason);
          }
        },
        { concurrency: 4 },
      );
      await waitFor(() => seenBy.first!.length === 4);
      await first.close(100);
      expect(aborted).toHaveLength(2);
      startWorker(queue, (job) => {
        seenBy.second!.push(job.name);
      });
      await waitFor(() => seenBy.second!.length === 2);
      expect(seenBy.second).toEqual(['slow', 'slow']);
      if (supports('exactCounts')) {
        await waitFor(async () => (await queue.counts()).completed === 4);
      }
    });

    it('close() releases the jobs leased by an exchange still in flight when it was called', async () => {
      const queue = makeQueue();
      // The worker's exchange is held at a gate, so close() is called while it is on the wire.
      let openGate = (): void => {};
      const gate = new Promise<void>((resolve) => {
        openGate = resolve;
      });
      let exchanges = 0;
      const gated = new Proxy(provider, {
        get: (target, key) => {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key !== 'exchange') return value.bind(target);
          return async (...args: Parameters<QueueProvider['exchange']>) => {
            exchanges += 1;
            await gate;
            return target.exchange(...args);
          };
        },
      });
      await queue.add('late', null);
      const runs: string[] = [];
      const worker = new Worker({
        queue: new Queue({ name: queue.name, provider: gated }),
        handler: (job) => {
          runs.push(job.id);
        },
      });
      await waitFor(() => exchanges === 1);
      const closed = worker.close(1_000);
      openGate();
      await closed;
      expect(runs).toEqual([]);
      // Released for immediate redelivery, not left leased until the lease expires.
      const seen: string[] = [];
      startWorker(
        queue,
        (job) => {
          seen.push(job.id);
        },
        { maintenanceIntervalMs: 60_000, leaseMs: 60_000 },
      );
      await waitFor(() => seen.length === 1, 5_000, 'the job to be released');
    });

    it('prefetch: leases ahead, runs in order, and close releases the leased-ahead jobs', async () => {
      const queue = makeQueue<number>();
      await queue.addBulk(Array.from({ length: 10 }, (_, n) => ({ name: 'p', data: n })));
      const first: number[] = [];
      const worker = startWorker(
        queue,
        async (job) => {
          first.push(job.data);
          if (job.data === 3) await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
        },
        { concurrency: 1, prefetch: 2 },
      );
      await waitFor(() => first.length === 4);
      await sleep(50);
      await worker.close(100);
      expect(first).toEqual([0, 1, 2, 3]);
      const second: number[] = [];
      startWorker(queue, (job) => {
        second.push(job.data);
      });
      await waitFor(() => second.length === 7);
      await sleep(50);
      expect(second.sort((a, b) => a - b)).toEqual([3, 4, 5, 6, 7, 8, 9]);
    });

    it("prefetch 'auto' (default): a slow handler leaves the other jobs waiting for any worker", async () => {
      const queue = makeQueue<number>();
      await queue.addBulk(Array.from({ length: 4 }, (_, n) => ({ name: 'slow', data: n })));
      const started: number[] = [];
      // "Slow" is relative to the worker's round trip, which a loaded machine stretches past any
      // fixed handler time (a fixed 80 ms run was faster than the exchanges once, so the worker
      // rightly leased ahead). Each run lasts twice the slowest exchange answered so far.
      let slowestExchangeMs = 0;
      const timed = new Proxy(provider, {
        get: (target, key) => {
          const value = Reflect.get(target, key, target) as unknown;
          if (typeof value !== 'function') return value;
          if (key !== 'exchange') return value.bind(target);
          return async (...args: Parameters<QueueProvider['exchange']>) => {
            const sentAt = performance.now();
            const response = await target.exchange(...args);
            slowestExchangeMs = Math.max(slowestExchangeMs, performance.now() - sentAt);
            return response;
          };
        },
      });
      const worker = startWorker(new Queue<number>({ name: queue.name, provider: timed }), async (job) => {
        started.push(job.data);
        const startedAt = performance.now();
        while (performance.now() - startedAt < Math.max(80, 2 * slowestExchangeMs)) await sleep(10);
      });
      // After two slow jobs the worker knows its handler is slower than a round trip.
      await waitFor(() => started.length === 3);
      if (supports('exactCounts')) expect(await queue.counts()).toMatchObject({ active: 1, waiting: 1 });
      await waitFor(() => started.length === 4);
      await worker.close();
      expect(started).toEqual([0, 1, 2, 3]);
    });

    it('drains waiting jobs and counts states', async () => {
      const queue = makeQueue();
      await queue.addBulk(Array.from({ length: 5 }, () => ({ name: 'x', data: null })));
      await queue.add('later', null, { delay: 60_000 });
      if (supports('exactCounts'))
        expect(await queue.counts()).toMatchObject({ waiting: 5, delayed: 1, active: 0 });
      expect(await queue.drain()).toBe(5);
      if (supports('exactCounts')) expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 1 });
    });
  });
}
