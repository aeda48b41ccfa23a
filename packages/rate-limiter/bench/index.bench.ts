import path from 'node:path';
import {
  type PrivateRedis,
  type PrivateRedisCluster,
  startPrivateRedis,
  startRedisCluster,
} from '@noa/testkit';
import { type BenchCase, benchChildCase, runBench } from '@noa/testkit/bench';
import { httpCases } from './http-cases.js';
import { memoryCases } from './memory-cases.js';
import { pauseCases, redisCases, redisClusterCases } from './redis-cases.js';

// Side-by-side cases: ours and the named anchor, same inputs, same (private) Redis, one run.
const memory = memoryCases();
// A child process started for one memory row (their `processes`) needs no server.
const memoryChild = benchChildCase !== undefined && memory.some((each) => each.case === benchChildCase);
let redis: PrivateRedis | undefined;
if (!memoryChild)
  try {
    redis = await startPrivateRedis();
  } catch (error) {
    console.log(`skipped: Redis cases (no redis-server to start privately: ${(error as Error).message})`);
  }
let cluster: PrivateRedisCluster | undefined;
if (redis)
  try {
    cluster = await startRedisCluster(3);
  } catch (error) {
    console.log(`skipped: Redis Cluster case (no private cluster: ${(error as Error).message})`);
  }
const http = memoryChild ? undefined : await httpCases();
const clusterCases = cluster ? await redisClusterCases(cluster) : undefined;
try {
  const cases: BenchCase[] = [...memory];
  if (redis) cases.push(...(await redisCases(redis)));
  if (clusterCases) cases.push(...clusterCases.cases);
  if (http) cases.push(...http.cases);
  if (redis) cases.push(...pauseCases(redis));
  await runBench('@noa/rate-limiter', path.dirname(new URL(import.meta.url).pathname), cases);
} finally {
  http?.close();
  clusterCases?.close();
  await cluster?.stop();
  await redis?.stop();
}
process.exit(0);
