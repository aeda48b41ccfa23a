import path from 'node:path';
import { type PrivateRedis, startPrivateRedis } from '@noa/testkit';
import { type BenchCase, runBench } from '@noa/testkit/bench';
import { httpCases } from './http-cases.js';
import { memoryCases } from './memory-cases.js';
import { pauseCase, redisCases } from './redis-cases.js';

// Side-by-side cases: ours and the named anchor, same inputs, same (private) Redis, one run.
let redis: PrivateRedis | undefined;
try {
  redis = await startPrivateRedis();
} catch (error) {
  console.log(`skipped: Redis cases (no redis-server to start privately: ${(error as Error).message})`);
}
const http = await httpCases();
try {
  const cases: BenchCase[] = [...memoryCases()];
  if (redis) cases.push(...(await redisCases(redis)));
  cases.push(...http.cases);
  if (redis) cases.push(pauseCase(redis));
  await runBench('@noa/rate-limiter', path.dirname(new URL(import.meta.url).pathname), cases);
} finally {
  http.close();
  await redis?.stop();
}
process.exit(0);
