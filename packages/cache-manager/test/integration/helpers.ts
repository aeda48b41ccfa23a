import { clearRedisPrefix, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';

/** The shared Redis URL and whether it answers (tests skip, loudly, when it does not). */
export const redisUrl = serviceUrl('redis');
export const redisUp = await isReachable('redis');
if (!redisUp) console.log(`skipped: no Redis at ${redisUrl}`);

/** A unique key prefix for one test file. */
export function testPrefix(label: string): string {
  return `${uniqueName(label)}:`;
}

/** Deletes every key under `prefix` on the shared Redis (SCAN, never FLUSH: the server is shared). */
export function dropPrefix(prefix: string): Promise<number> {
  return clearRedisPrefix(prefix, redisUrl);
}

/** Nearest-rank quantile. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export { Redis };
