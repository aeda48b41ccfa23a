import { type BenchCase, opsPerSecond, size } from '@noa/testkit/bench';
import { MemoryStore as ExpressRateLimitMemoryStore } from 'express-rate-limit';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { type AlgorithmName, createRateLimiter } from '../src/index.js';

const keyCount = 10_000;
const keys = Array.from({ length: keyCount }, (_, index) => `user-${index}`);
const iterations = size(1_000_000, 20_000);
// Large enough that nothing is refused: both sides measure the admit path.
const points = 1_000_000_000;

function ours(algorithm: AlgorithmName): () => Promise<number> {
  // Buckets refill limit/windowMs per ms: a huge limit would refill them within a millisecond, so
  // their state would expire and be re-created on every check. A huge burst with a slow refill
  // keeps the state alive and still refuses nothing, like the windows' huge limit.
  const bucket = algorithm === 'token-bucket' || algorithm === 'leaky-bucket';
  const limit = bucket
    ? { algorithm, limit: 1, windowMs: 1_000_000, burst: 1_000_000 }
    : { algorithm, limit: points, windowMs: 60_000 };
  const limiter = createRateLimiter({ limits: [limit] });
  return () => opsPerSecond(iterations, (index) => limiter.check(keys[index % keyCount]!));
}

function rlf(): () => Promise<number> {
  const limiter = new RateLimiterMemory({ points, duration: 60 });
  return () => opsPerSecond(iterations, (index) => limiter.consume(keys[index % keyCount]!));
}

function expressRateLimitStore(): () => Promise<number> {
  const store = new ExpressRateLimitMemoryStore();
  store.init({ windowMs: 60_000 } as Parameters<ExpressRateLimitMemoryStore['init']>[0]);
  (store.interval as NodeJS.Timeout | undefined)?.unref();
  return () => opsPerSecond(iterations, (index) => store.increment(keys[index % keyCount]!));
}

/** Memory store cases: fixed window against both anchors, the other algorithms against RLF. */
export function memoryCases(): BenchCase[] {
  const ourFixed = ours('fixed-window');
  const cases: BenchCase[] = [
    {
      case: 'memory, fixed window, 10k keys',
      unit: 'ops/s',
      better: 'higher',
      goal: 3,
      anchor: 'rate-limiter-flexible@11.4.0 RateLimiterMemory',
      ours: ourFixed,
      theirs: rlf(),
    },
    {
      case: 'memory, fixed window, 10k keys (vs express-rate-limit)',
      unit: 'ops/s',
      better: 'higher',
      goal: 1,
      anchor: 'express-rate-limit@8.7.4 MemoryStore',
      ours: ourFixed,
      theirs: expressRateLimitStore(),
    },
  ];
  for (const algorithm of ['sliding-window', 'sliding-log', 'token-bucket', 'leaky-bucket'] as const) {
    if (algorithm === 'sliding-log') continue;
    cases.push({
      case: `memory, ${algorithm}, 10k keys`,
      unit: 'ops/s',
      better: 'higher',
      anchor: 'rate-limiter-flexible@11.4.0 RateLimiterMemory',
      ours: ours(algorithm),
      theirs: rlf(),
    });
  }
  return cases;
}
