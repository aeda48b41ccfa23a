import path from 'node:path';
import { startPrivateRedis } from '@noa/testkit';
import { runBench } from '@noa/testkit/bench';
import { httpCases } from './http-cases.js';
import { memoryCases } from './memory-cases.js';
import { pauseCase, redisCases } from './redis-cases.js';

// Side-by-side cases: ours and the named anchor, same inputs, same (private) Redis, one run.
const redis = await startPrivateRedis();
const http = await httpCases();
try {
  await runBench('@noa/rate-limiter', path.dirname(new URL(import.meta.url).pathname), [
    ...memoryCases(),
    ...(await redisCases(redis)),
    ...http.cases,
    pauseCase(redis),
  ]);
} finally {
  http.close();
  await redis.stop();
}
process.exit(0);
