import { type PrivateRabbit, recordingLogger, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { sleep, waitFor } from '../helpers.js';
import { privateRabbitUnavailable } from './private-rabbit-setup.js';

const unavailable = privateRabbitUnavailable();

describe
  .skipIf(unavailable !== undefined)
  .concurrent('a handler longer than RabbitMQ consumer_timeout (AMQP only)', () => {
    let node: PrivateRabbit;
    beforeAll(async () => {
      node = await startPrivateRabbit();
      // The broker's ack deadline (default 30 min), checked every channel tick: 0.9 s here, and
      // the slow job 3.3 times that (3 s), so the broker times it out more than once.
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
          const worker = new Worker({
            queue,
            concurrency,
            handler: async (job) => {
              runs.push(job.name);
              if (job.name === 'slow') await sleep(3_000);
              return job.name;
            },
          });
          worker.on('completed', (_id, result) => completed.push(String(result)));
          await queue.add('slow', null);
          await waitFor(() => runs.length === 1);
          await queue.add('quick', null);
          await waitFor(() => completed.includes('slow'), 15_000, 'the slow job to complete');
          await queue.add('after', null);
          await waitFor(() => completed.includes('after'), 10_000, 'a job added after it');
          await sleep(500);
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
      }, 60_000);
    }
  });
