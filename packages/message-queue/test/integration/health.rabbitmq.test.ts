import { TimeoutError } from '@noa/core';
import { type RecordingLogger, recordingLogger, uniqueName, within } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';
import {
  cleanUpCase,
  nodeStartMs,
  privateRabbitUnavailable,
  providerOn,
  stateVariants,
  usePrivateRabbitNode,
} from './private-rabbit-setup.js';
import { useSharedOutages } from './shared-outage.js';

const unavailable = privateRabbitUnavailable();

async function backendUp(registry: Registry, queue: string): Promise<number[]> {
  const metric = await registry.getSingleMetric('noa_message_queue_backend_up')?.get();
  return (metric?.values ?? []).filter((value) => value.labels.queue === queue).map((value) => value.value);
}

/** The worker's outage transitions ('backend unavailable …' / 'backend available again'), in order. */
function transitions(logger: RecordingLogger, from = 0): string[] {
  return logger.entries
    .slice(from)
    .map((entry) => entry.message)
    .filter((message) => message.startsWith('backend unavailable') || message === 'backend available again');
}

/**
 * Every error the worker emitted was an outage report ('backend unavailable', once per outage),
 * none another failure's: as many errors as such lines, and a later one only after the worker saw
 * the backend again. Besides the stop's, a loaded machine can give one before it: a call slower
 * than the test's 500 ms `backendTimeoutMs` is an outage by contract, ended by its late answer.
 * Seen under load: the AMQP-only first exchange (amqplib's first import, 550 ms, then the
 * connect) reported at 750 ms, up at 845 ms; with the store, an exchange unanswered for 2 s
 * while the add of that moment took as long.
 */
function expectOutageReports(errors: unknown[], logger: RecordingLogger): void {
  const seen = transitions(logger);
  const downs = seen.filter((message) => message.startsWith('backend unavailable'));
  expect(errors.length, errors.map(String).join('; ')).toBe(downs.length);
  for (let index = 1; index < seen.length; index += 1)
    if (seen[index]!.startsWith('backend unavailable'))
      expect(seen[index - 1], seen.join(' | ')).toBe('backend available again');
}

const variants = await stateVariants();

/**
 * Bounds of the steps that have no deadline of their own, so that a hang fails with its step
 * instead of the test's timeout (CI once saw all four cases reach it, naming no step). The
 * node boots in 3-10 s; stop() is SIGTERM, SIGKILL after 15 s, then up to 5 s for its process
 * group. An add without a deadline waits for its broker. worker.close() is bounded by its
 * closeTimeoutMs (10 s) and backendCloseTimeoutMs (5 s), provider.close() by its 5 s.
 */
const nodeStopMs = 25_000;
const addMs = 10_000;
const workerCloseMs = 20_000;
const providerCloseMs = 10_000;
const deleteQueueMs = 10_000;
const bounds = { workerCloseMs, providerCloseMs, deleteQueueMs };
/** Above the sum of a case's bounded waits (about 160 s at worst), so a step's bound fails first. */
const caseTimeoutMs = 180_000;

// The four cases (two checks, two setups) run together, each with its own provider, queue and
// worker, and share one stop and start of the node (see `useSharedOutages`): each takes its
// counts just before the stop, in the stop's own step.
describe
  .skipIf(unavailable !== undefined)
  .concurrent('worker health while the RabbitMQ broker is down', () => {
    const privateNode = usePrivateRabbitNode();
    const outages = useSharedOutages<() => void>({
      takeOut: async (beforeStop) => {
        for (const snapshot of beforeStop) snapshot();
        await within('stop the private node', nodeStopMs, privateNode().stop());
      },
      bringBack: () => within('start the private node again', nodeStartMs, privateNode().start()),
    });

    for (const variant of variants)
      it.skipIf(variant.skip)(
        `goes down with the cause while the node is stopped, and up again once it is back and runs a job added then (${variant.label})`,
        async () => {
          onTestFinished(() => outages.leave());
          const node = privateNode();
          const { redis, provider } = providerOn(node, variant.state, 'health-state');
          const registry = new Registry();
          const queue = new Queue<number>({ name: uniqueName('health-rabbit'), provider });
          const ran: number[] = [];
          const errors: unknown[] = [];
          const logger = recordingLogger();
          const worker = new Worker({
            queue,
            backendTimeoutMs: 500,
            registry,
            logger,
            handler: async (job) => {
              ran.push(job.data);
            },
          });
          worker.on('error', (error) => errors.push(error));
          // After the case, failed or not, each step bounded (see `cleanUpWithin`).
          onTestFinished(() => cleanUpCase({ node, worker, queue, provider, redis }, bounds));
          await within('add a job before the outage', addMs, queue.add('before', 1));
          await waitFor(() => ran.includes(1), 10_000, 'a job before the outage');
          await waitFor(() => worker.backendState === 'up', 5_000, 'the worker to be up');
          expect(await backendUp(registry, queue.name)).toEqual([1]);

          // One stop is one outage, one report: the node stops its listener before it closes the
          // connections, so no reconnect reaches it while it shuts down.
          let errorsBeforeStop = 0;
          let linesBeforeStop = 0;
          await outages.out(() => {
            errorsBeforeStop = errors.length;
            linesBeforeStop = logger.entries.length;
          });
          await waitFor(() => worker.backendState === 'down', 15_000, 'the worker to see the broker down');
          const report = worker.health();
          expect(report.status).toBe('down');
          expect(report.cause).toBeInstanceOf(Error);
          expect(await backendUp(registry, queue.name)).toEqual([0]);
          // The queue's probe too (with a store it read the store alone, and said up).
          const probe = await queue.checkHealth({ timeoutMs: 500 });
          expect(probe.status).toBe('down');
          expect(probe.cause).toBeInstanceOf(TimeoutError);
          expect(errors.slice(errorsBeforeStop).map(String)).toHaveLength(1);
          expect(transitions(logger, linesBeforeStop)).toEqual([
            expect.stringMatching(/^backend unavailable/),
          ]);
          expectOutageReports(errors, logger);

          await outages.back();
          await within('add a job after the restart', addMs, queue.add('after', 2));
          await waitFor(() => ran.includes(2), 30_000, 'a job added after the restart');
          await waitFor(() => worker.backendState === 'up', 10_000, 'the worker to be up again');
          expect(worker.health().status).toBe('up');
          expect(await backendUp(registry, queue.name)).toEqual([1]);
          expectOutageReports(errors, logger);
        },
        caseTimeoutMs,
      );

    for (const variant of variants)
      it.skipIf(variant.skip)(
        `reports a stop once while a job runs through it, its lease renewals answered meanwhile without the broker (${variant.label})`,
        async () => {
          onTestFinished(() => outages.leave());
          const node = privateNode();
          const { redis, provider } = providerOn(node, variant.state, 'health-renew-state');
          // Counts the renewals answered while the worker holds the broker down: by Redis with a
          // store, by the provider itself without one.
          let workerDown = (): boolean => false;
          let renewalsWhileDown = 0;
          const counting = new Proxy(provider, {
            get: (target, key) => {
              const value = Reflect.get(target, key, target) as unknown;
              if (typeof value !== 'function') return value;
              if (key !== 'extendLeases') return value.bind(target);
              return async (...args: Parameters<QueueProvider['extendLeases']>) => {
                const renewal = await (target as QueueProvider).extendLeases(...args);
                if (workerDown()) renewalsWhileDown += 1;
                return renewal;
              };
            },
          });
          const queue = new Queue<number>({ name: uniqueName('health-renew'), provider: counting });
          const logger = recordingLogger();
          const errors: unknown[] = [];
          let letFinish = (): void => {};
          const mayFinish = new Promise<void>((resolve) => {
            letFinish = resolve;
          });
          const ran: number[] = [];
          const worker = new Worker({
            queue,
            backendTimeoutMs: 500,
            // Renewed every 500 ms: several renewals while the node is down.
            leaseMs: 1_500,
            maintenanceIntervalMs: 500,
            logger,
            handler: async (job) => {
              ran.push(job.data);
              await mayFinish;
            },
          });
          workerDown = () => worker.backendState === 'down';
          worker.on('error', (error) => errors.push(error));
          onTestFinished(() =>
            cleanUpCase({ node, worker, queue, provider, redis }, bounds, [
              ['let the job finish', 1_000, () => letFinish()],
            ]),
          );
          await within('add a job before the outage', addMs, queue.add('long', 1));
          await waitFor(() => ran.includes(1) && worker.backendState === 'up', 10_000, 'the job to run');
          let errorsBeforeStop = 0;
          let linesBeforeStop = 0;
          await outages.out(() => {
            errorsBeforeStop = errors.length;
            linesBeforeStop = logger.entries.length;
          });
          await waitFor(() => renewalsWhileDown >= 3, 20_000, 'three lease renewals answered while down');
          // Before: each answered renewal ended the outage and the next unanswered call began
          // another (3 errors in 6 s), or, renewed faster than backendTimeoutMs, kept it 'up'.
          expect(worker.backendState).toBe('down');
          expect(errors.slice(errorsBeforeStop).map(String)).toHaveLength(1);
          expect(transitions(logger, linesBeforeStop)).toEqual([
            expect.stringMatching(/^backend unavailable/),
          ]);

          await outages.back();
          await waitFor(() => worker.backendState === 'up', 30_000, 'the worker to be up again');
          letFinish();
          await within('add a job after the restart', addMs, queue.add('after', 2));
          await waitFor(() => ran.includes(2), 30_000, 'a job added after the restart');
          expect(transitions(logger, linesBeforeStop).slice(0, 2)).toEqual([
            expect.stringMatching(/^backend unavailable/),
            'backend available again',
          ]);
          expectOutageReports(errors, logger);
        },
        caseTimeoutMs,
      );
  });
