import { type PrivateRabbit, recordingLogger, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';
import { privateRabbitUnavailable } from './private-rabbit-setup.js';

const unavailable = privateRabbitUnavailable();

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
          // Between the broker's close and the redelivery's arrival (the reconnect) it does not,
          // and a try finishing then is refused and the job runs again (at-least-once).
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
  });
