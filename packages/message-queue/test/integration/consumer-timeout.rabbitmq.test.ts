import { type PrivateRabbit, recordingLogger, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';
import { privateRabbitUnavailable, providerOn, stateVariants } from './private-rabbit-setup.js';

const unavailable = privateRabbitUnavailable();
const variants = await stateVariants();

/**
 * A recording logger, and a promise that resolves when the broker closes a consumer channel for
 * its consumer_timeout: amqplib emits the channel's `error` (logged as a warning) and then, in the
 * same turn, its `close`, so a handler awaiting it returns just after the close, before the
 * provider has reconnected, let alone had the job redelivered.
 */
function timeoutWatch() {
  const logger = recordingLogger();
  let closed!: () => void;
  const channelClosed = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const warn = (message: string, fields?: Record<string, unknown>) => {
    logger.warn(message, fields);
    if (JSON.stringify(fields ?? {}).includes('PRECONDITION_FAILED')) closed();
  };
  return { logger: { ...logger, warn }, lines: logger.lines, channelClosed };
}

/** A counter's value for one queue on a registry (0 when it has no series). */
async function counter(registry: Registry, name: string, queue: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return metric?.values.find((value) => value.labels.queue === queue)?.value ?? 0;
}

describe
  .skipIf(unavailable !== undefined)
  .concurrent('a handler longer than RabbitMQ consumer_timeout (AMQP only)', () => {
    let node: PrivateRabbit;
    beforeAll(async () => {
      node = await startPrivateRabbit();
      // The broker's ack deadline (default 30 min), checked every channel tick: 0.9 s here. The
      // slow job runs until the broker has timed it out twice (see `timedOutTwiceAndBack`).
      await node.ctl(
        'eval',
        'application:set_env(rabbit, consumer_timeout, 900), application:set_env(rabbit, channel_tick_interval, 250).',
      );
    });
    afterAll(async () => {
      await node?.destroy();
    });
    // Concurrency 4: the redelivery is fetched while the slow try runs. Concurrency 1: it waits
    // in the prefetch buffer until the slow try has finished. Each on its own connection, side
    // by side on the one node.
    for (const concurrency of [4, 1]) {
      it(`runs the job once in this process and says why the broker closed the channel (concurrency ${concurrency})`, async () => {
        const logger = recordingLogger();
        const provider = new RabbitMqProvider({ url: node.url, reconnectDelayMs: 50, logger });
        try {
          const queue = new Queue({ name: uniqueName('consumer-timeout'), provider });
          const runs: string[] = [];
          const completed: string[] = [];
          const timeouts = () =>
            logger.lines('warn').filter((warning) => warning.includes('PRECONDITION_FAILED')).length;
          // Whether this process holds the job's delivery on the live channel, or its redelivery
          // waits in the buffer: the question the worker's heartbeat asks (its `lost` answer).
          // Between the broker's close and the redelivery's arrival (the reconnect) it does not: a
          // try finishing then is kept for the redelivery (see the tests below).
          const held = async (id: string) =>
            (await provider.extendLeases(queue.name, [{ id }], Date.now())).lost.length === 0;
          // Until the broker has closed the channel twice for this try (not a guess at how long
          // that takes: a starved broker is late), then until the redelivery is back here. The
          // poll that first sees both is within one 10 ms step of the arrival, a whole
          // consumer_timeout before the broker could close the new channel, so the outcome
          // settles the redelivery.
          const timedOutTwiceAndBack = (id: string) =>
            waitFor(
              async () => timeouts() >= 2 && (await held(id)),
              45_000,
              'the broker to time the slow job out twice and redeliver it here',
            );
          const worker = new Worker({
            queue,
            concurrency,
            // Heartbeats (every leaseMs / 3) after the wait's bound: one falling in a reconnect
            // aborts the try (README, consumer_timeout), which is not what this test is about.
            leaseMs: 180_000,
            handler: async (job) => {
              runs.push(job.name);
              if (job.name === 'slow') await timedOutTwiceAndBack(job.id);
              return job.name;
            },
          });
          worker.on('completed', (_id, result) => completed.push(String(result)));
          await queue.add('slow', null);
          await waitFor(() => runs.length === 1);
          await queue.add('quick', null);
          await waitFor(() => completed.includes('slow'), 60_000, 'the slow job to complete');
          await queue.add('after', null);
          await waitFor(() => completed.includes('after'), 10_000, 'a job added after it');
          // A redelivery of the slow job is ahead of 'after' in the queue: by now it has run again
          // (the bug) or is settled. Nothing held or buffered here: nothing left to run.
          await waitFor(
            async () => (await provider.counts(queue.name)).active === 0,
            10_000,
            'no delivery held or buffered',
          );
          await worker.close();
          // Before: the broker redelivered the slow job at every timeout and it ran again each time.
          expect(runs.sort()).toEqual(['after', 'quick', 'slow']);
          expect(completed.sort()).toEqual(['after', 'quick', 'slow']);
          expect((await provider.counts(queue.name)).waiting).toBe(0);
          await provider.deleteQueue(queue.name);
          const told = logger.lines('warn').some((warning) => warning.includes('PRECONDITION_FAILED'));
          // Not reproduced alone or under load (once in a loaded whole-package run, both cases):
          // if it recurs, the failure shows what the node had set and what was logged.
          const diagnosis = told
            ? ''
            : `${await node.ctl(
                'eval',
                '{application:get_env(rabbit, consumer_timeout), application:get_env(rabbit, channel_tick_interval)}.',
              )} ${logger.lines('warn', 'info').join(' | ')}`;
          expect(told, diagnosis).toBe(true);
        } finally {
          await provider.close();
        }
      }, 120_000);
    }

    // The gap: the broker has closed the channel (and requeued the job) and the handler returns
    // before the redelivery is back. Its outcome cannot be acknowledged on the closed channel; the
    // redelivery must not run it again here. Three outcomes: completed, failed with a retry left,
    // failed for good. Concurrency 1, so the redelivery is the next delivery of the queue.
    for (const variant of variants) {
      for (const outcome of ['completes', 'fails and retries', 'fails for good'] as const) {
        it.skipIf(variant.skip)(
          `a job finishing after the broker closed its channel runs once: ${outcome} (${variant.label})`,
          async () => {
            const watch = timeoutWatch();
            const registry = new Registry();
            const { redis, provider } = providerOn(node, variant.state, 'consumer-timeout-gap-state', {
              logger: watch.logger,
            });
            try {
              const queue = new Queue({ name: uniqueName('consumer-timeout-gap'), provider });
              const runs: string[] = [];
              const completed: string[] = [];
              const failed: { id: string; willRetry: boolean }[] = [];
              const worker = new Worker({
                queue,
                concurrency: 1,
                registry,
                // No heartbeat in the gap (see the test above).
                leaseMs: 180_000,
                handler: async (job) => {
                  runs.push(`${job.name}#${job.attemptsMade}`);
                  if (job.name !== 'gap') return job.name;
                  await watch.channelClosed;
                  if (outcome === 'completes' || job.attemptsMade > 0) return job.name;
                  throw new Error('failed in the gap');
                },
              });
              worker.on('completed', (id) => completed.push(id));
              worker.on('failed', (id, _error, willRetry) => failed.push({ id, willRetry }));
              const gap = await queue.add('gap', null, { attempts: outcome === 'fails for good' ? 1 : 2 });
              const settledOnce = () =>
                outcome === 'fails for good' ? failed.length > 0 : completed.includes(gap.id);
              await waitFor(settledOnce, 60_000, 'the gap job to settle');
              // The redelivery is ahead of 'after' in the queue: by the time 'after' completes it
              // has run again (the bug) or been settled.
              const after = await queue.add('after', null);
              await waitFor(() => completed.includes(after.id), 20_000, 'a job added after it');
              await waitFor(
                async () => (await provider.counts(queue.name)).active === 0,
                10_000,
                'no delivery held or buffered',
              );
              await worker.close();
              const retried = outcome === 'fails and retries';
              expect(runs).toEqual(retried ? ['gap#0', 'gap#1', 'after#0'] : ['gap#0', 'after#0']);
              expect(completed).toEqual(outcome === 'fails for good' ? [after.id] : [gap.id, after.id]);
              expect(failed).toEqual(outcome === 'completes' ? [] : [{ id: gap.id, willRetry: retried }]);
              const counts = await provider.counts(queue.name);
              expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 0 });
              expect(counts.failed).toBe(outcome === 'fails for good' ? 1 : 0);
              if (variant.state) {
                expect(counts.completed).toBe(outcome === 'fails for good' ? 1 : 2);
                expect((await queue.getJob(gap.id))?.state).toBe(
                  outcome === 'fails for good' ? 'failed' : 'completed',
                );
              }
              const metric = (name: string) => counter(registry, `noa_message_queue_${name}`, queue.name);
              expect(await metric('jobs_completed_total')).toBe(outcome === 'fails for good' ? 1 : 2);
              expect(await metric('jobs_failed_total')).toBe(outcome === 'completes' ? 0 : 1);
              expect(await metric('jobs_retried_total')).toBe(retried ? 1 : 0);
              expect(await metric('jobs_dead_lettered_total')).toBe(outcome === 'fails for good' ? 1 : 0);
              // Without a store the kept outcome settled the redelivery (the gap was hit, not missed);
              // with one, the store dropped the redelivery of a job it holds finished.
              expect(await metric('redeliveries_settled_total')).toBe(variant.state ? 0 : 1);
              expect(watch.lines('warn').some((line) => line.includes('PRECONDITION_FAILED'))).toBe(true);
              await provider.deleteQueue(queue.name);
            } finally {
              await provider.close();
              redis?.disconnect();
            }
          },
          120_000,
        );
      }
    }
  });
