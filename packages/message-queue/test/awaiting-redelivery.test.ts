import { recordingLogger } from '@noa/testkit';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type ExchangeRequest, type ExchangeResponse, MemoryProvider, Queue, Worker } from '../src/index.js';
import type { Settlement } from '../src/provider.js';
import { waitFor } from './helpers.js';

/**
 * A memory provider whose first completion is answered as RabbitMQ answers one whose channel
 * closed (`awaitingRedelivery`): kept, not stored, until the test lets the redelivery come
 * (`settle`: then stored as sent) or has the provider forget it (`forget`: refused).
 */
class KeepingProvider extends MemoryProvider {
  kept: Settlement | undefined;
  mode: 'keep' | 'settle' | 'forget' = 'keep';
  resent = 0;

  override async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    const settle: Settlement[] = [];
    let awaiting = false;
    let forgotten = false;
    for (const settlement of request.settle) {
      if (this.kept === undefined && settlement.kind === 'complete') {
        this.kept = settlement;
        awaiting = true;
      } else if (settlement === this.kept) {
        this.resent += 1;
        if (this.mode === 'keep') awaiting = true;
        else if (this.mode === 'forget') forgotten = true;
        else settle.push(settlement);
      } else settle.push(settlement);
    }
    const response = await super.exchange(queue, { ...request, settle });
    const id = this.kept?.record.id ?? '';
    if (awaiting) response.awaitingRedelivery = [id];
    if (forgotten) response.stale = [...(response.stale ?? []), id];
    return response;
  }
}

async function counter(registry: Registry, name: string, queue: string): Promise<number> {
  const metric = await registry.getSingleMetric(`noa_message_queue_${name}`)?.get();
  return metric?.values.find((value) => value.labels.queue === queue)?.value ?? 0;
}

function setup(name: string) {
  const provider = new KeepingProvider();
  const registry = new Registry();
  const logger = recordingLogger();
  const queue = new Queue({ name, provider });
  const completed: string[] = [];
  const worker = new Worker({ queue, registry, logger, pollIntervalMs: 10, handler: (job) => job.name });
  worker.on('completed', (id) => completed.push(id));
  return { provider, registry, logger, queue, worker, completed };
}

describe('a settlement kept for its redelivery (ExchangeResponse.awaitingRedelivery)', () => {
  it('is sent again and reported once the provider settled the redelivery with it', async () => {
    const { provider, registry, queue, worker, completed } = setup('awaiting-settled');
    const { id } = await queue.add('job', null);
    // Sent again with later exchanges, and not reported meanwhile.
    await waitFor(() => provider.resent >= 3);
    expect(completed).toEqual([]);
    provider.mode = 'settle';
    await waitFor(() => completed.length > 0);
    const resent = provider.resent;
    await queue.add('after', null);
    await waitFor(() => completed.length === 2);
    await worker.close();
    // Reported once, and no longer sent once answered.
    expect(completed.filter((done) => done === id)).toHaveLength(1);
    expect(provider.resent).toBe(resent);
    expect((await queue.getJob(id))?.state).toBe('completed');
    expect(await counter(registry, 'redeliveries_settled_total', queue.name)).toBe(1);
    expect(await counter(registry, 'jobs_completed_total', queue.name)).toBe(2);
    expect(await counter(registry, 'leases_lost_total', queue.name)).toBe(0);
  });

  it('is reported refused, and its lease counted lost, when the provider forgot it', async () => {
    const { provider, registry, logger, queue, worker, completed } = setup('awaiting-forgotten');
    await queue.add('job', null);
    await waitFor(() => provider.resent >= 1);
    provider.mode = 'forget';
    await waitFor(() =>
      logger.messages('warn').some((message) => message.startsWith('late outcomes refused')),
    );
    await worker.close();
    expect(completed).toEqual([]);
    expect(await counter(registry, 'leases_lost_total', queue.name)).toBe(1);
    expect(await counter(registry, 'redeliveries_settled_total', queue.name)).toBe(0);
  });

  it('is reported refused when the worker closes before it is answered', async () => {
    const { provider, registry, logger, queue, worker, completed } = setup('awaiting-closed');
    await queue.add('job', null);
    await waitFor(() => provider.resent >= 1);
    await worker.close();
    expect(completed).toEqual([]);
    expect(logger.messages('warn')).toContain(
      'worker closed before the redelivery of jobs whose channel closed came back; their outcomes are not reported',
    );
    expect(await counter(registry, 'leases_lost_total', queue.name)).toBe(1);
  });
});
