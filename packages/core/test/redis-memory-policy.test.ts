import { describe, expect, it } from 'vitest';
import { redisEvictingPolicy as evictingPolicy } from '../src/redis-memory-policy.js';

const info = (maxmemory: number, policy: string) =>
  `# Memory\r\nused_memory:900000\r\nmaxmemory:${maxmemory}\r\nmaxmemory_human:0B\r\nmaxmemory_policy:${policy}\r\n`;

describe('redisEvictingPolicy', () => {
  it('names a policy that evicts once maxmemory is set', () => {
    expect(evictingPolicy(info(1_000_000, 'allkeys-lru'))).toBe('allkeys-lru');
    // Keys with an expiry (every rate-limit key, tag sets): volatile-* evicts them too.
    expect(evictingPolicy(info(1_000_000, 'volatile-ttl'))).toBe('volatile-ttl');
  });
  it('is undefined for noeviction, no maxmemory, or a reply without the fields', () => {
    expect(evictingPolicy(info(1_000_000, 'noeviction'))).toBeUndefined();
    expect(evictingPolicy(info(0, 'allkeys-lru'))).toBeUndefined();
    expect(evictingPolicy('')).toBeUndefined();
  });
});
