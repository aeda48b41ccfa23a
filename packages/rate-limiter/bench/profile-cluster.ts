// A CPU profile of one side of the Cluster bench's checks (the fixed-window rows of
// redis-cases.ts: 64 in flight over 10k keys, on a private 3-master cluster), after two untimed
// runs, with this process's CPU per check printed for each timed run:
//   node --conditions=@noa/source --import tsx bench/profile-cluster.ts ours|theirs [out.cpuprofile]
// (TOTAL checks per run, default 40000; ROUNDS timed runs, default 5). Without an output file
// nothing is profiled. Open the profile in Chrome DevTools, or sum its samples per function/file.
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startRedisCluster } from '@noa/testkit';
import { concurrentOpsPerSecond } from '@noa/testkit/bench';
import { Cluster } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createRateLimiter } from '../src/index.js';
import { RedisStore, recommendedClusterOptions } from '../src/redis.js';

const side = process.argv[2] ?? 'ours';
const out = process.argv[3];
const total = Number(process.env.TOTAL ?? 40_000);
const rounds = Number(process.env.ROUNDS ?? 5);
const keys = Array.from({ length: 10_000 }, (_, index) => `user-${index}`);
const cluster = await startRedisCluster(3);
const connection = new Cluster(cluster.nodes, recommendedClusterOptions);
connection.on('error', () => {});
await once(connection, 'ready');
await Promise.all(
  connection.nodes('master').map((node) => (node.status === 'ready' ? undefined : node.connect())),
);
let run = 0;
const checks = () => {
  run += 1;
  if (side === 'ours') {
    const limiter = createRateLimiter({
      store: new RedisStore({ client: connection, prefix: `c-${run}:` }),
      limits: [{ limit: 1e9, windowMs: 60_000 }],
      deadlineMs: 1_000,
    });
    return concurrentOpsPerSecond(total, 64, (index) => limiter.check(keys[index % 10_000]!));
  }
  const limiter = new RateLimiterRedis({
    storeClient: connection,
    keyPrefix: `ct-${run}`,
    points: 1e9,
    duration: 60,
  });
  return concurrentOpsPerSecond(total, 64, (index) => limiter.consume(keys[index % 10_000]!));
};
try {
  await checks();
  await checks();
  const session = new Session();
  session.connect();
  if (out) {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  const cpu: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const before = process.cpuUsage();
    await checks();
    const used = process.cpuUsage(before);
    cpu.push((used.user + used.system) / total);
  }
  if (out) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(out, JSON.stringify(profile));
  }
  cpu.sort((a, b) => a - b);
  console.log(
    `${side}: client CPU µs/check per round ${cpu.map((v) => v.toFixed(2)).join(' ')} median ${cpu[Math.floor(cpu.length / 2)]!.toFixed(2)}`,
  );
} finally {
  connection.disconnect();
  await cluster.stop();
}
process.exit(0);
