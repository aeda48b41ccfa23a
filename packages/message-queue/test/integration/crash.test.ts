import { spawn } from 'node:child_process';
import path from 'node:path';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore, RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

const root = path.resolve(import.meta.dirname, '../../../..');
const fixture = path.resolve(import.meta.dirname, '../fixtures/crash-worker.ts');

const statePrefix = uniqueName('crash-state');
const backends: {
  kind: string;
  url: string;
  up: boolean;
  /** Extra arguments of the crash-worker fixture. */
  extra?: string[];
  make: (url: string) => { provider: QueueProvider; close: () => Promise<unknown> };
}[] = [
  {
    kind: 'redis',
    url: serviceUrl('redis'),
    up: await isReachable('redis'),
    make: (url: string) => {
      const connection = new Redis(url, { maxRetriesPerRequest: null });
      return { provider: new RedisProvider({ connection }) as QueueProvider, close: () => connection.quit() };
    },
  },
  {
    kind: 'rabbitmq',
    url: serviceUrl('rabbitmq'),
    up: await isReachable('rabbitmq'),
    make: (url: string) => {
      const provider = new RabbitMqProvider({ url });
      return { provider: provider as QueueProvider, close: () => provider.close() };
    },
  },
  {
    // The broker redelivers the killed worker's messages at once; the store lets them run
    // (orphaned) although their leases have not expired yet.
    kind: 'rabbitmq-state',
    url: serviceUrl('rabbitmq'),
    up: (await isReachable('rabbitmq')) && (await isReachable('redis')),
    extra: [serviceUrl('redis'), statePrefix],
    make: (url: string) => {
      const connection = new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null });
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection, prefix: statePrefix }),
      });
      return {
        provider: provider as QueueProvider,
        close: async () => {
          await provider.close();
          await connection.quit();
        },
      };
    },
  },
];

for (const backend of backends) {
  if (!backend.up) console.log(`skipped: no ${backend.kind} at ${backend.url}`);
  describe.skipIf(!backend.up)(
    `crash: a worker killed with SIGKILL while holding 100 jobs (${backend.kind})`,
    () => {
      it('loses no job: every job completes, the held ones run again on another worker', async () => {
        const name = uniqueName('crash');
        const { provider, close } = backend.make(backend.url);
        const queue = new Queue<number>({ name, provider });
        const total = 300;
        try {
          await queue.addBulk(Array.from({ length: total }, (_, n) => ({ name: 'work', data: n })));
          const child = spawn(
            process.execPath,
            [
              '--conditions=@noa/source',
              '--import',
              'tsx',
              fixture,
              backend.kind,
              backend.url,
              name,
              '100',
              ...(backend.extra ?? []),
            ],
            { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
          );
          let output = '';
          child.stdout.on('data', (chunk: Buffer) => {
            output += chunk.toString();
          });
          await waitFor(() => output.includes('holding 100'), 30_000, 'the child to hold 100 jobs');
          child.kill('SIGKILL');
          await new Promise((resolve) => child.once('exit', resolve));
          const heldByChild = new Set(
            output
              .split('\n')
              .filter((line) => line.startsWith('start '))
              .map((line) => line.slice(6)),
          );

          const runs = new Map<string, number>();
          const completed = new Set<number>();
          const worker = new Worker({
            queue,
            concurrency: 50,
            leaseMs: 1_000,
            maintenanceIntervalMs: 200,
            handler: (job) => {
              runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
              completed.add(job.data);
            },
          });
          await waitFor(() => completed.size === total, 30_000, 'every job to complete');
          await worker.close();
          const rerun = [...heldByChild].filter((id) => runs.has(id)).length;
          const twiceHere = [...runs.values()].filter((count) => count > 1).length;
          console.log(
            `crash test (${backend.kind}): ${total} jobs, ${completed.size} completed, ${heldByChild.size} held by the killed ` +
              `worker of which ${rerun} ran again (duplicates, at-least-once), ${twiceHere} ran twice on the survivor`,
          );
          expect(completed.size).toBe(total);
          expect(heldByChild.size).toBe(100);
          expect(rerun).toBe(100);
        } finally {
          if (provider instanceof RabbitMqProvider) await provider.deleteQueue(name);
          await close();
        }
      });
    },
  );
}
