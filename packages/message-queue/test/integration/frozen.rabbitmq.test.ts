import { TimeoutError, withDeadline } from '@noa/core';
import { type PrivateRabbit, recordingLogger, startPrivateRabbit, uniqueName } from '@noa/testkit';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  AddNotConfirmedError,
  BackendUnavailableError,
  BrokerUnavailableError,
  Queue,
  Worker,
} from '../../src/index.js';
import type { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';
import { privateRabbitUnavailable, providerOn, stateVariants } from './private-rabbit-setup.js';
import { useSharedOutages } from './shared-outage.js';

// A frozen broker (its Erlang VM SIGSTOPped): the TCP connections stay open, the AMQP connection
// still counts as open, and nothing answers. The worker must find it down by its own calls
// (within backendTimeoutMs of its next exchange or maintenance pass, see README "Health"), not
// by amqplib's heartbeat (60 s, twice), and up again after SIGCONT, with nothing lost or run twice.
const unavailable = privateRabbitUnavailable();
const variants = await stateVariants();

/** How many times each value occurs. */
function tally(values: readonly unknown[]): Map<unknown, number> {
  const counts = new Map<unknown, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

/**
 * A case's cleanup, whether it ended frozen or not: the node resumed (SIGCONT leaves a running
 * node as it is; a case that failed frozen so resumes it under the others of its block too), then the worker closed, the queue deleted, the provider closed and the state
 * store's connection dropped.
 */
async function cleanUp(
  node: PrivateRabbit,
  parts: {
    worker?: Worker<number>;
    queue: Queue<number>;
    provider: RabbitMqProvider;
    redis: Redis | undefined;
  },
): Promise<void> {
  node.resume();
  await parts.worker?.close();
  await parts.provider.deleteQueue(parts.queue.name);
  await parts.provider.close();
  parts.redis?.disconnect();
}

// One node for the file. Per setup (AMQP only, with a store), the five cases run together, each
// with its own provider, queue and worker, and share one freeze (see `useSharedOutages`): each
// takes its counts just before the SIGSTOP, in the freeze's own step, and the node gets SIGCONT
// once every case is done with the freeze.
describe.skipIf(unavailable !== undefined)(
  'worker health while the RabbitMQ broker is frozen (SIGSTOP)',
  () => {
    let node: PrivateRabbit;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    beforeAll(async () => {
      process.on('unhandledRejection', onUnhandled);
      node = await startPrivateRabbit();
    });
    afterAll(async () => {
      process.off('unhandledRejection', onUnhandled);
      await node?.destroy();
    });

    for (const variant of variants)
      describe.concurrent(variant.label, () => {
        const outages = useSharedOutages<() => void>({
          takeOut: async (beforeFreeze) => {
            for (const snapshot of beforeFreeze) snapshot();
            node.freeze();
          },
          bringBack: async () => node.resume(),
        });
        afterAll(() => node?.resume());
        it.skipIf(variant.skip)(
          `goes down while the node is frozen under a running job and up after SIGCONT; the job completes once, an add during the freeze rejects with AddNotConfirmedError and lands once (${variant.label})`,
          async () => {
            onTestFinished(() => outages.leave());
            const { redis, provider } = providerOn(node, variant.state, 'frozen-state');
            const queue = new Queue<number>({ name: uniqueName('frozen-rabbit'), provider });
            const logger = recordingLogger();
            const errors: unknown[] = [];
            const ran: number[] = [];
            const completed: string[] = [];
            let letFinish = (): void => {};
            const mayFinish = new Promise<void>((resolve) => {
              letFinish = resolve;
            });
            const worker = new Worker({
              queue,
              // Defaults otherwise: leaseMs 30 s (renewals every 10 s), maintenance every 5 s.
              backendTimeoutMs: 1_000,
              logger,
              handler: async (job) => {
                ran.push(job.data);
                if (job.data === 1) await mayFinish;
              },
            });
            worker.on('error', (error) => errors.push(error));
            worker.on('completed', (id) => completed.push(id));
            try {
              const first = await queue.add('held', 1);
              await waitFor(() => ran.includes(1) && worker.backendState === 'up', 20_000, 'the job to run');
              let errorsBeforeFreeze = 0;
              await outages.out(() => {
                errorsBeforeFreeze = errors.length;
              });
              await waitFor(
                () => worker.backendState === 'down',
                30_000,
                'the worker to see the frozen broker down',
              );
              const report = worker.health();
              expect(report.status).toBe('down');
              expect(report.cause).toBeInstanceOf(BackendUnavailableError);
              // The queue's active probe times out too.
              const probe = await queue.checkHealth({ timeoutMs: 500 });
              expect(probe.status).toBe('down');
              expect(probe.cause).toBeInstanceOf(TimeoutError);
              // A publish to the frozen broker is bounded by the add's deadline: it rejects with the
              // typed error, the job possibly enqueued (its bytes are in the socket).
              const during = await queue.add('during', 2, {}, { timeoutMs: 1_000 }).then(
                () => undefined,
                (error: unknown) => error,
              );
              expect(during).toBeInstanceOf(AddNotConfirmedError);
              expect(during).toMatchObject({ reason: 'timeout', mayBeEnqueued: true });
              expect(worker.health().status).toBe('down');

              await outages.back();
              await waitFor(() => worker.backendState === 'up', 30_000, 'the worker to be up again');
              expect(worker.health().status).toBe('up');
              letFinish();
              await waitFor(() => completed.includes(first.id), 30_000, 'the held job to complete');
              await waitFor(() => ran.includes(2), 30_000, 'the job added during the freeze to run');
              const after = await queue.add('after', 3);
              await waitFor(
                () => completed.includes(after.id),
                30_000,
                'a job added after SIGCONT to complete',
              );
              await waitFor(() => completed.length === 3, 30_000, 'three completions');

              // One outage, one report; each job ran and completed once.
              expect(
                errors
                  .slice(errorsBeforeFreeze)
                  .map((error) => (error as { code?: string }).code ?? String(error)),
              ).toEqual(['NOA_MQ_BACKEND_UNAVAILABLE']);
              expect([...tally(ran).values()]).toEqual([1, 1, 1]);
              expect([...tally(completed).values()]).toEqual([1, 1, 1]);
              expect(
                logger.messages('warn').filter((message) => message.startsWith('leases expired')),
              ).toEqual([]);
              expect(unhandled).toEqual([]);
            } finally {
              letFinish();
              await cleanUp(node, { worker, queue, provider, redis });
            }
          },
          180_000,
        );

        // README, Failure modes, "A frozen RabbitMQ broker": with the defaults an idle worker sees it
        // down within pollIntervalMs (its next exchange) + brokerFreshMs (the exchange starting a
        // second or more after the freeze is the one that probes) + backendTimeoutMs + a watchdog
        // tick (a quarter of it): 1 + 1 + 5 + 1.25 s, "about 8 s". The wait below is that plus a
        // margin for a loaded machine, under the 12 s of a busy worker's bound.
        const idleBoundMs = 1_000 + 1_000 + 5_000 + 1_250;
        const loadMarginMs = 2_500;
        it.skipIf(variant.skip)(
          `an idle worker (defaults, no jobs) goes down within the README's bound while the node is frozen, and up after SIGCONT; a job added then runs once (${variant.label})`,
          async () => {
            onTestFinished(() => outages.leave());
            const { redis, provider } = providerOn(node, variant.state, 'frozen-idle-state');
            const queue = new Queue<number>({ name: uniqueName('frozen-idle'), provider });
            const logger = recordingLogger();
            const errors: unknown[] = [];
            const ran: number[] = [];
            const completed: string[] = [];
            // The defaults: the README's bound is stated for them.
            const worker = new Worker({
              queue,
              logger,
              handler: async (job) => {
                ran.push(job.data);
              },
            });
            worker.on('error', (error) => errors.push(error));
            worker.on('completed', (id) => completed.push(id));
            try {
              await waitFor(() => worker.backendState === 'up', 20_000, 'the worker to see the broker up');
              let errorsBeforeFreeze = 0;
              await outages.out(() => {
                errorsBeforeFreeze = errors.length;
              });
              await waitFor(
                () => worker.health().status === 'down',
                idleBoundMs + loadMarginMs,
                'the idle worker to report the frozen broker down',
              );
              const report = worker.health();
              expect(report.cause).toBeInstanceOf(BackendUnavailableError);
              expect(worker.activeCount).toBe(0);

              await outages.back();
              await waitFor(() => worker.health().status === 'up', 30_000, 'the worker to be up again');
              const after = await queue.add('after', 1);
              await waitFor(
                () => completed.includes(after.id),
                30_000,
                'a job added after SIGCONT to complete',
              );
              // Nothing else to run: the job ran once, and the freeze was one outage, one report.
              await waitFor(() => worker.activeCount === 0, 5_000, 'the worker to be idle again');
              expect(ran).toEqual([1]);
              expect(completed).toEqual([after.id]);
              expect(
                errors
                  .slice(errorsBeforeFreeze)
                  .map((error) => (error as { code?: string }).code ?? String(error)),
              ).toEqual(['NOA_MQ_BACKEND_UNAVAILABLE']);
              expect(unhandled).toEqual([]);
            } finally {
              await cleanUp(node, { worker, queue, provider, redis });
            }
          },
          120_000,
        );

        // counts() are the broker's (with a store, read once the broker is known to answer): a frozen
        // broker must make them fail with the typed error within the provider's readyTimeoutMs, not
        // wait for SIGCONT or amqplib's heartbeat (two minutes). A count started within a second of
        // the broker's last word may still be answered (README: "at most 1 s ago counts as
        // answering"), so counts are asked one after the other until one rejects.
        const readyTimeoutMs = 2_000;
        it.skipIf(variant.skip)(
          `queue.counts() rejects with BrokerUnavailableError within readyTimeoutMs while the node is frozen, and answers after SIGCONT (${variant.label})`,
          async () => {
            onTestFinished(() => outages.leave());
            const { redis, provider } = providerOn(node, variant.state, 'frozen-counts-state', {
              readyTimeoutMs,
            });
            const queue = new Queue<number>({ name: uniqueName('frozen-counts'), provider });
            try {
              await queue.add('waiting', 1);
              expect((await queue.counts()).waiting).toBe(1);

              await outages.out(() => {});
              // Bounded per count: brokerFreshMs (1 s) for the first, readyTimeoutMs for the one that
              // waits, plus a margin for a loaded machine.
              const outcomes: unknown[] = [];
              await waitFor(
                async () => {
                  outcomes.push(
                    await withDeadline(queue.counts(), readyTimeoutMs + 3_000, 'queue.counts()').then(
                      (counts) => counts,
                      (error: unknown) => error,
                    ),
                  );
                  return outcomes.at(-1) instanceof BrokerUnavailableError;
                },
                1_000 + readyTimeoutMs + 3_000,
                'a count to reject while the node is frozen',
              );
              const rejected = outcomes.at(-1) as BrokerUnavailableError;
              expect(rejected.code).toBe('NOA_MQ_BROKER_UNAVAILABLE');
              // The counts answered before it (the broker heard from within the last second) were
              // the true ones; none failed otherwise.
              for (const outcome of outcomes.slice(0, -1)) expect(outcome).toMatchObject({ waiting: 1 });

              await outages.back();
              await waitFor(
                async () =>
                  (await queue.counts().then(
                    (counts) => counts.waiting,
                    () => undefined,
                  )) === 1,
                30_000,
                'counts() to answer after SIGCONT',
              );
            } finally {
              await cleanUp(node, { queue, provider, redis });
            }
          },
          120_000,
        );

        // An autoscaling worker counts the queue every intervalMs; on a frozen broker each count now
        // rejects after readyTimeoutMs. Once the worker has reported the outage, those rejections are
        // the same outage: logged at debug, not one `error` event each.
        it.skipIf(variant.skip)(
          `an autoscaling worker reports the frozen broker once, its failing counts at debug (${variant.label})`,
          async () => {
            onTestFinished(() => outages.leave());
            const logger = recordingLogger();
            const { redis, provider } = providerOn(node, variant.state, 'frozen-autoscale-state', {
              readyTimeoutMs: 500,
              logger,
            });
            const queue = new Queue<number>({ name: uniqueName('frozen-autoscale'), provider });
            const errors: unknown[] = [];
            const worker = new Worker({
              queue,
              backendTimeoutMs: 500,
              autoscale: { min: 1, max: 4, jobsPerSlot: 1, intervalMs: 50 },
              logger,
              handler: async () => {},
            });
            worker.on('error', (error) => errors.push(error));
            const autoscaleFailures = (): number =>
              // At debug during a reported outage, at warn (with an `error`) otherwise.
              logger.messages('debug', 'warn').filter((message) => message === 'worker could not autoscale')
                .length;
            try {
              await waitFor(() => worker.backendState === 'up', 20_000, 'the worker to see the broker up');
              await outages.out(() => {});
              await waitFor(
                () => worker.backendState === 'down',
                15_000,
                'the worker to see the frozen broker down',
              );
              const errorsAtDown = errors.length;
              const failuresAtDown = autoscaleFailures();
              await waitFor(
                () => autoscaleFailures() >= failuresAtDown + 3,
                15_000,
                'three autoscale counts to fail during the outage',
              );
              expect(worker.backendState).toBe('down');
              expect(errors.slice(errorsAtDown).map(String)).toEqual([]);

              await outages.back();
              await waitFor(() => worker.backendState === 'up', 30_000, 'the worker to be up again');
              expect(unhandled).toEqual([]);
            } finally {
              await cleanUp(node, { worker, queue, provider, redis });
            }
          },
          120_000,
        );

        // README, Health: "Until its backend first answers … it is down without a cause … so a worker
        // that never reached its broker is not reported up." Its first call, the cancel subscription,
        // is answered without the broker on RabbitMQ (nothing to subscribe to without a store, the
        // store's answer with one), so it must not count as the broker answering.
        it.skipIf(variant.skip)(
          `a worker started while the node is frozen is never up until the broker answers, then runs a job once (${variant.label})`,
          async () => {
            onTestFinished(() => outages.leave());
            const { redis, provider } = providerOn(node, variant.state, 'frozen-start-state');
            const queue = new Queue<number>({ name: uniqueName('frozen-start'), provider });
            const errors: unknown[] = [];
            const ran: number[] = [];
            const completed: string[] = [];
            await outages.out(() => {});
            const worker = new Worker({
              queue,
              backendTimeoutMs: 500,
              handler: async (job) => {
                ran.push(job.data);
              },
            });
            worker.on('error', (error) => errors.push(error));
            worker.on('completed', (id) => completed.push(id));
            try {
              const seen = new Set<string>();
              await waitFor(
                () => {
                  seen.add(worker.backendState);
                  return worker.backendState === 'down';
                },
                15_000,
                'the worker to find the frozen broker down',
              );
              expect([...seen]).not.toContain('up');
              expect(worker.health().cause).toBeInstanceOf(BackendUnavailableError);

              await outages.back();
              await waitFor(() => worker.backendState === 'up', 30_000, 'the worker to be up after SIGCONT');
              const job = await queue.add('after', 1);
              await waitFor(
                () => completed.includes(job.id),
                30_000,
                'a job added after SIGCONT to complete',
              );
              expect(ran).toEqual([1]);
              expect(errors.map((error) => (error as { code?: string }).code ?? String(error))).toEqual([
                'NOA_MQ_BACKEND_UNAVAILABLE',
              ]);
              expect(unhandled).toEqual([]);
            } finally {
              await cleanUp(node, { worker, queue, provider, redis });
            }
          },
          120_000,
        );
      });
  },
);
