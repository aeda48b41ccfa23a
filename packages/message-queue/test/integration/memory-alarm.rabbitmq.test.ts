import { type PrivateRabbit, recordingLogger, startPrivateRabbit, uniqueName } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';
import { privateRabbitUnavailable } from './private-rabbit-setup.js';

const unavailable = privateRabbitUnavailable();

// The memory alarm raised by hand: the node's own monitor only clears an alarm it raised.
const setAlarm = 'rabbit_alarm:set_alarm({{resource_limit, memory, node()}, []}).';
const clearAlarm = 'rabbit_alarm:clear_alarm({resource_limit, memory, node()}).';

describe.skipIf(unavailable !== undefined)('a RabbitMQ memory alarm (connection.blocked)', () => {
  let node: PrivateRabbit;
  beforeAll(async () => {
    node = await startPrivateRabbit();
  });
  afterAll(async () => {
    await node?.destroy();
  });

  /** Messages the broker holds for the queue, ready and unacknowledged (what the alarm waits on). */
  async function held(queue: string): Promise<number> {
    const output = await node.ctl('list_queues', '-q', '--no-table-headers', 'name', 'messages');
    const line = output.split('\n').find((row) => row.trim().split(/\s+/)[0] === queue);
    return line ? Number(line.trim().split(/\s+/)[1]) : -1;
  }

  it('workers (and counts) of a provider whose add is blocked still run and acknowledge the queued jobs; the add lands once the alarm clears', async () => {
    const logger = recordingLogger();
    const provider = new RabbitMqProvider({ url: node.url, reconnectDelayMs: 50, logger });
    try {
      const queue = new Queue({ name: uniqueName('memory-alarm'), provider });
      for (let index = 0; index < 20; index += 1) await queue.add('queued', { index });
      await node.ctl('eval', setAlarm);
      // The broker stops reading a connection that publishes while the alarm is on.
      let lateAdded = false;
      let cleared = false;
      const late = queue.add('late', null).then(() => {
        lateAdded = true;
      });
      late.catch(() => undefined); // awaited below; a failure before that is the test's own
      // The broker's connection.blocked, as the provider logs it: no rabbitmqctl poll (each call
      // boots an Erlang VM, ~1 s alone and many under load; see the test's bound below).
      await waitFor(
        () => logger.messages('warn').includes('RabbitMQ blocked the publishing connection'),
        30_000,
        'the broker to block the publishing connection',
      );
      // Counting reads the broker (passive declares), it does not publish: it answers.
      const health = await queue.checkHealth({ timeoutMs: 5_000 });
      expect(health.status).toBe('up');
      expect(health.details).toMatchObject({ counts: { waiting: 20 } });
      const ran: string[] = [];
      const worker = new Worker({
        queue,
        concurrency: 4,
        handler: async (job) => {
          ran.push(job.name);
        },
      });
      try {
        await waitFor(() => ran.length >= 20, 15_000, 'the 20 queued jobs to run');
        // Acknowledged while the alarm is on: consuming is what frees the broker's memory.
        await waitFor(
          async () => (await held(queue.name)) === 0,
          60_000,
          'the queued jobs to be acknowledged',
        );
        expect(lateAdded).toBe(false);
        await node.ctl('eval', clearAlarm);
        cleared = true;
        await late;
        expect(logger.messages('info')).toContain('RabbitMQ unblocked the publishing connection');
        await waitFor(() => ran.includes('late'), 15_000, 'the late job to run');
        expect(ran.filter((name) => name === 'queued')).toHaveLength(20);
      } finally {
        if (!cleared) await node.ctl('eval', clearAlarm);
        await worker.close();
      }
      await provider.deleteQueue(queue.name);
    } finally {
      await provider.close();
    }
    // A bound, not a measure: it passes in ~6 s alone, but its rabbitmqctl calls (set and clear
    // the alarm, list the queue) each boot an Erlang VM, and in a loaded whole-package run (load
    // 16 on 2 cores) the test used up 90 s.
  }, 180_000);
});
