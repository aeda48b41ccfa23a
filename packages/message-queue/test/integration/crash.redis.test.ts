import { spawn } from 'node:child_process';
import path from 'node:path';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, RedisProvider, Worker } from '../../src/index.js';
import { waitFor } from '../helpers.js';

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);
const root = path.resolve(import.meta.dirname, '../../../..');
const fixture = path.resolve(import.meta.dirname, '../fixtures/crash-worker.ts');

describe.skipIf(!reachable)('crash: a worker killed with SIGKILL mid-job (Redis)', () => {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  afterAll(async () => {
    await connection.quit();
  });

  it('loses no job: the 100 jobs it held run again on another worker', async () => {
    const name = uniqueName('crash');
    const runsKey = `${name}:runs`;
    const queue = new Queue({ name, provider: new RedisProvider({ connection }) });
    const total = 300;
    await queue.addBulk(Array.from({ length: total }, (_, n) => ({ name: 'work', data: n })));

    const child = spawn(
      process.execPath,
      ['--conditions=@noa/source', '--import', 'tsx', fixture, url, name, runsKey, '100'],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await waitFor(() => output.includes('holding 100'), 30_000, 'the child to hold 100 jobs');
    expect((await queue.counts()).active).toBe(100);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    const completions = new Map<string, number>();
    const worker = new Worker({
      queue,
      concurrency: 50,
      leaseMs: 1_000,
      maintenanceIntervalMs: 200,
      handler: async (job) => {
        await connection.hincrby(runsKey, job.id, 1);
      },
    });
    worker.on('completed', (id) => completions.set(id, (completions.get(id) ?? 0) + 1));
    await waitFor(() => completions.size === total, 30_000, 'every job to complete');
    await worker.close();

    const runs = Object.values(await connection.hgetall(runsKey)).map(Number);
    const duplicates = runs.filter((count) => count > 1).length;
    console.log(
      `crash test: ${total} jobs, ${completions.size} completed, ${duplicates} ran twice (the ${100} held by the killed worker), ` +
        `${[...completions.values()].filter((count) => count > 1).length} completed twice`,
    );
    expect(completions.size).toBe(total);
    expect(runs).toHaveLength(total);
    expect(duplicates).toBe(100);
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: total });
    await connection.del(runsKey);
  });
});
