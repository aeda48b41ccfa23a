import {
  isReachable,
  type PrivateRabbit,
  type RecordingLogger,
  recordingLogger,
  serviceUrl,
  startPrivateRabbit,
  uniqueName,
} from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';
import { privateRabbitUnavailable } from './private-rabbit-setup.js';
import {
  counter,
  cutWhileRunning,
  gate,
  heldJobWorker,
  proxiedUrl,
  reconnectingProvider,
} from './proxied-rabbit.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const noPrivateNode = privateRabbitUnavailable();

/** An AMQP basic.publish method (class 60, method 40) in what a client sends. */
const publishMethod = Buffer.from([0, 60, 0, 40]);

const keptNotPublished = 'could not publish the kept outcome of a redelivered job; it runs again';

function count(logger: RecordingLogger, message: string): number {
  return logger.messages('warn').filter((line) => line === message).length;
}

// Without a store: a try fails while its connection is down, so its outcome (a retry) is kept
// for the redelivery (remembered-outcomes.ts). The redelivery comes back; the retry's publish,
// made as it arrives, is lost with the connection (the proxy holds what the worker sends from
// the publish on, then is cut). The job must be neither lost nor completed twice.
describe.skipIf(!reachable)('RabbitMQ: the publish of a kept failure fails', () => {
  it('the job runs again and completes once (the connection is lost during the publish)', async () => {
    const { proxy, url: proxied } = await proxiedUrl(url);
    const name = uniqueName('kept-failure-publish');
    const logger = recordingLogger();
    const provider = reconnectingProvider(proxied, logger);
    const queue = new Queue({ name, provider });
    const registry = new Registry();
    const finish = gate();
    const runs: string[] = [];
    const completed: string[] = [];
    const failed: string[] = [];
    let worker: Worker | undefined;
    try {
      worker = new Worker({
        queue,
        registry,
        ...heldJobWorker,
        handler: async (job) => {
          runs.push(`${job.name}#${job.attemptsMade}`);
          if (job.name !== 'gap' || runs.length > 1) return job.name;
          await finish.wait;
          throw new Error('failed while the connection was down');
        },
      });
      worker.on('completed', (id) => completed.push(id));
      worker.on('failed', (id) => failed.push(id));
      const { id } = await queue.add('gap', null, { attempts: 3, backoff: { type: 'fixed', delayMs: 50 } });
      await cutWhileRunning(proxy, logger, runs);
      finish.open();
      // The redelivery passes; the kept retry's publish (and all the worker sends after it) is held.
      let publishHeld = false;
      proxy.holdClientFrom((chunk) => {
        publishHeld = chunk.includes(publishMethod);
        return publishHeld;
      });
      await proxy.up();
      await waitFor(() => publishHeld, 20_000, 'the kept retry to be published as the redelivery arrives');
      proxy.sever();
      proxy.thaw();
      proxy.mend();
      await waitFor(() => count(logger, keptNotPublished) === 1, 10_000, 'the publish to fail');
      await waitFor(() => completed.includes(id), 20_000, 'the job to complete');
      const after = await queue.add('after', null);
      await waitFor(() => completed.includes(after.id), 20_000, 'a job added after it');
      await waitFor(async () => (await provider.counts(name)).active === 0, 10_000, 'nothing held');
      await worker.close();
      // Completed once, by the redelivery's run. The failed try's outcome, forgotten, is refused
      // when the worker sends it again (its delivery was taken when it was kept): a lost lease,
      // no `failed` event. Nothing of the job left waiting, delayed or dead.
      expect(completed).toEqual([id, after.id]);
      expect(runs).toEqual(['gap#0', 'gap#0', 'after#0']);
      expect(failed).toEqual([]);
      expect(await counter(registry, 'leases_lost_total', name)).toBe(1);
      expect(await provider.counts(name)).toMatchObject({ waiting: 0, active: 0, delayed: 0, failed: 0 });
    } finally {
      finish.open();
      proxy.thaw();
      await worker?.close();
      await provider.deleteQueue(name).catch(() => undefined);
      await provider.close();
      await proxy.close();
    }
  }, 60_000);
});

// The same, the broker refusing the retry's publish (a policy on the job's delay queues: no room,
// reject-publish; the broker nacks the message) on a private node. The redelivery is given back
// (nack, requeue) and runs again; the policy is lifted once the refusal is seen.
describe.skipIf(noPrivateNode !== undefined)(
  'RabbitMQ: the broker refuses the publish of a kept failure',
  () => {
    let node: PrivateRabbit;
    beforeAll(async () => {
      node = await startPrivateRabbit();
    });
    afterAll(async () => {
      await node?.destroy();
    });

    it('the job runs again and completes once (the broker nacks the publish)', async () => {
      const { proxy, url: proxied } = await proxiedUrl(node.url);
      const name = uniqueName('kept-failure-refused');
      const logger = recordingLogger();
      const provider = reconnectingProvider(proxied, logger);
      const queue = new Queue({ name, provider });
      const registry = new Registry();
      const finish = gate();
      const runs: string[] = [];
      const completed: string[] = [];
      const failed: string[] = [];
      let worker: Worker | undefined;
      try {
        worker = new Worker({
          queue,
          registry,
          ...heldJobWorker,
          handler: async (job) => {
            runs.push(`${job.name}#${job.attemptsMade}`);
            if (job.name !== 'gap' || runs.length > 1) return job.name;
            await finish.wait;
            throw new Error('failed while the connection was down');
          },
        });
        worker.on('completed', (id) => completed.push(id));
        worker.on('failed', (id) => failed.push(id));
        await node.ctl(
          'set_policy',
          '--apply-to',
          'queues',
          'no-room-for-retries',
          `^${name}\\.delay\\.`,
          '{"max-length":0,"overflow":"reject-publish"}',
        );
        // Long enough that the retry goes to a delay queue, whatever the reconnect takes.
        const { id } = await queue.add('gap', null, {
          attempts: 3,
          backoff: { type: 'fixed', delayMs: 60_000 },
        });
        await cutWhileRunning(proxy, logger, runs);
        finish.open();
        await proxy.up();
        await waitFor(() => count(logger, keptNotPublished) >= 1, 20_000, 'the broker to refuse the publish');
        await node.ctl('clear_policy', 'no-room-for-retries');
        await waitFor(() => completed.includes(id), 20_000, 'the job to complete');
        const after = await queue.add('after', null);
        await waitFor(() => completed.includes(after.id), 20_000, 'a job added after it');
        await waitFor(async () => (await provider.counts(name)).active === 0, 10_000, 'nothing held');
        await worker.close();
        // As above: the redelivery, given back, ran again; the late failure was refused.
        expect(completed).toEqual([id, after.id]);
        expect(runs).toEqual(['gap#0', 'gap#0', 'after#0']);
        expect(failed).toEqual([]);
        expect(await counter(registry, 'leases_lost_total', name)).toBe(1);
        expect(await provider.counts(name)).toMatchObject({ waiting: 0, active: 0, delayed: 0, failed: 0 });
      } finally {
        finish.open();
        await worker?.close();
        await provider.deleteQueue(name).catch(() => undefined);
        await provider.close();
        await proxy.close();
      }
    }, 90_000);
  },
);
