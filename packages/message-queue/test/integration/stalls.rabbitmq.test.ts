import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);

/** The provider, its lease renewals never answered: each run finds its lease expired, as a stalled event loop would. */
function withUnansweredRenewals(provider: QueueProvider): QueueProvider {
  return new Proxy(provider, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target) as unknown;
      if (typeof value !== 'function') return value;
      if (key === 'extendLeases') return () => new Promise(() => {});
      return value.bind(target);
    },
  });
}

// What the README's provider matrix and "A poison job" say of RabbitMQ without a state store:
// it counts no stalls, so `maxStalls` does not apply and such a job is requeued each time. (With
// a store it is dead-lettered after `maxStalls`: the conformance suite's give-back case.)
describe.skipIf(!reachable)('RabbitMQ without a state store: stalls', () => {
  it('counts no stall and never dead-letters a job whose every run stalls past leaseMs (maxStalls does not apply)', async () => {
    const provider = new RabbitMqProvider({ url });
    const queue = new Queue({ name: uniqueName('stalls'), provider });
    const registry = new Registry();
    let runs = 0;
    const worker = new Worker({
      queue: new Queue({ name: queue.name, provider: withUnansweredRenewals(provider) }),
      leaseMs: 200,
      maxStalls: 1,
      maintenanceIntervalMs: 100,
      registry,
      handler: (job) => {
        runs += 1;
        return new Promise((_resolve, reject) => {
          job.signal.addEventListener('abort', () => reject(job.signal.reason));
        });
      },
    });
    try {
      await queue.add('blocker', null, { attempts: 1 });
      // maxStalls 1 dead-letters it at its second stall where stalls are counted; here it keeps coming back.
      await waitFor(() => runs >= 5, 10_000, 'five runs of the stalling job');
      expect((await queue.counts()).failed).toBe(0);
      const metrics = await registry.metrics();
      expect(metrics).not.toMatch(/noa_message_queue_jobs_stalled_total\{[^}]*\} [1-9]/);
      expect(metrics).not.toMatch(/noa_message_queue_jobs_dead_lettered_total\{[^}]*\} [1-9]/);
    } finally {
      await worker.close(200);
      await provider.deleteQueue(queue.name);
      await provider.close();
    }
  });
});
