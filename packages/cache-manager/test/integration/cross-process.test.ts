import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { type FixtureProcess, spawnFixture } from './fixture-process.js';
import { dropPrefix, quantile, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

const PROCESSES = 4;
const CONCURRENCY = 500;
const FACTORY_MS = 200;
type Worker = FixtureProcess;

function startWorker(prefix: string, key: string): Worker {
  return spawnFixture(
    'stampede-worker.ts',
    [redisUrl, prefix, key, String(CONCURRENCY), String(FACTORY_MS)],
    'worker',
  );
}

describe.skipIf(!redisUp)(
  `cross-process: ${PROCESSES} processes × ${CONCURRENCY} concurrent getOrSet`,
  () => {
    const prefix = testPrefix('cm_xproc');
    const redis = redisUp ? new Redis(redisUrl) : undefined;
    const workers: Worker[] = [];
    afterAll(async () => {
      for (const { child } of workers) {
        child.stdin.write('exit\n');
        setTimeout(() => child.kill('SIGKILL'), 3_000).unref();
      }
      await Promise.all(
        workers.map(({ child }) =>
          child.exitCode !== null || child.signalCode !== null
            ? undefined
            : new Promise((resolve) => child.once('exit', resolve)),
        ),
      );
      if (redis) {
        await dropPrefix(prefix);
        redis.disconnect();
      }
    });

    it('runs the 200 ms factory once in total, and bus invalidations reach every other process', async () => {
      workers.push(...Array.from({ length: PROCESSES }, () => startWorker(prefix, 'cold-key')));
      await Promise.all(workers.map((w) => w.next('ready')));
      for (const w of workers) w.child.stdin.write('go\n');
      const reports = await Promise.all(workers.map((w) => w.next('stampede')));
      const totalRuns = reports.reduce((sum, report) => sum + (report.runs as number), 0);
      console.log(
        `[cache-manager] cross-process stampede: factory runs per process ${reports.map((r) => r.runs).join(', ')}`,
      );
      expect(reports.every((report) => report.failures === 0)).toBe(true);
      expect(totalRuns).toBe(1);
      // Every caller in every process got the one producer's value.
      const producers = new Set(reports.flatMap((report) => report.producers as number[]));
      expect(producers.size).toBe(1);

      // Invalidation: each worker caches "watched" in L1, then this process overwrites it.
      const writer = new Cache({ redis, prefix, operationTimeoutMs: generousDeadlineMs });
      await writer.ready();
      await writer.set('watched', 'v1');
      for (const w of workers) w.child.stdin.write('watch\n');
      const watching = await Promise.all(workers.map((w) => w.next('watching')));
      expect(watching.every((message) => message.cached === true)).toBe(true);
      const latencies: number[] = [];
      for (let round = 0; round < 20; round += 1) {
        const arrivals = workers.map((w) => w.next('invalidated'));
        await writer.set('watched', `v${round + 2}`);
        for (const arrival of await Promise.all(arrivals)) latencies.push(arrival.latencyMs as number);
      }
      await writer.close();
      console.log(
        `[cache-manager] cross-process invalidation latency over ${latencies.length} deliveries: p50 ${quantile(latencies, 0.5)} ms, p99 ${quantile(latencies, 0.99)} ms (Date.now resolution)`,
      );
      expect(latencies).toHaveLength(20 * PROCESSES);
    });
  },
);
