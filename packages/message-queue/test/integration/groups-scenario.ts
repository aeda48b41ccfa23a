import { expect } from 'vitest';
import { type Queue, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';

/**
 * The groups test on any provider: 3 tenants weighted 3:2:1 with 2,000 jobs each; while
 * every group is backlogged (the first 3,600 dispatches: bronze gets 600 of its 2,000), each
 * tenant's share is within ±10% of its weight's.
 */
export async function expectWeightedDispatch(
  queue: Queue<{ tenant: string }>,
  label: string,
  timeoutMs: number,
): Promise<void> {
  await queue.pause();
  for (const tenant of ['gold', 'silver', 'bronze']) {
    await queue.addBulk(
      Array.from({ length: 2_000 }, () => ({ name: 'work', data: { tenant }, options: { group: tenant } })),
    );
  }
  const order: string[] = [];
  const worker = new Worker({
    queue,
    concurrency: 20,
    groups: { weights: { gold: 3, silver: 2, bronze: 1 } },
    handler: (job) => {
      order.push(job.data.tenant);
    },
  });
  await queue.resume();
  await waitFor(() => order.length >= 3_600, timeoutMs, '3,600 jobs');
  await worker.close();
  const window = order.slice(0, 3_600);
  const share = (tenant: string) => window.filter((value) => value === tenant).length / window.length;
  console.log(
    `${label}: gold ${share('gold').toFixed(3)} silver ${share('silver').toFixed(3)} bronze ${share('bronze').toFixed(3)}`,
  );
  expect(Math.abs(share('gold') / (3 / 6) - 1)).toBeLessThanOrEqual(0.1);
  expect(Math.abs(share('silver') / (2 / 6) - 1)).toBeLessThanOrEqual(0.1);
  expect(Math.abs(share('bronze') / (1 / 6) - 1)).toBeLessThanOrEqual(0.1);
}
