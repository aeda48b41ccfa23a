/**
 * Measures how long the private servers take to start, stop and come back, for the table in
 * the README: `pnpm --filter @noa/testkit start-times` (3 runs; `NOA_START_RUNS=n` for more).
 * Not a `bench` script: it compares nothing, and CI need not spend 40 s on it.
 */
import {
  startPrivatePostgres,
  startPrivateRabbit,
  startPrivateRedis,
  startRedisCluster,
} from '../src/index.js';

const runs = Number(process.env.NOA_START_RUNS ?? 3);
const samples = new Map<string, number[]>();

async function timed<T>(label: string, action: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const value = await action();
  const list = samples.get(label) ?? [];
  list.push(performance.now() - started);
  samples.set(label, list);
  return value;
}

for (let run = 0; run < runs; run += 1) {
  const redis = await timed('startPrivateRedis', () => startPrivateRedis());
  await timed('redis kill + restart', async () => {
    await redis.kill();
    await redis.restart();
  });
  await redis.stop();
  const cluster = await timed('startRedisCluster(3)', () => startRedisCluster(3));
  await cluster.stop();
  const primary = await timed('startPrivatePostgres', () => startPrivatePostgres());
  const replica = await timed('postgres createReplica', () => primary.createReplica());
  await timed('postgres kill + start', async () => {
    await primary.kill();
    await primary.start();
  });
  await timed('postgres stop + start', async () => {
    await primary.stop();
    await primary.start();
  });
  await replica.destroy();
  await primary.destroy();
  const rabbit = await timed('startPrivateRabbit', () => startPrivateRabbit());
  await timed('rabbit restart', () => rabbit.restart());
  await timed('rabbit kill + start', async () => {
    await rabbit.kill();
    await rabbit.start();
  });
  await timed('rabbit destroy', () => rabbit.destroy());
}

console.log(
  `| operation | min | median | max | (ms, ${runs} runs, load ${(await import('node:os')).loadavg()[0]?.toFixed(1)}) |`,
);
console.log('| --- | --- | --- | --- | --- |');
for (const [label, values] of samples) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
  console.log(
    `| ${label} | ${Math.round(sorted[0] ?? 0)} | ${Math.round(median)} | ${Math.round(sorted.at(-1) ?? 0)} | |`,
  );
}
