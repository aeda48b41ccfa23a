import { readFileSync } from 'node:fs';
import { startPrivateRedis } from '@noa/testkit';
import { concurrentOpsPerSecond } from '@noa/testkit/bench';
import { Redis } from 'ioredis';

const redis = await startPrivateRedis();
const c = new Redis(redis.url, { lazyConnect: true });
await c.connect();
const prelude =
  readFileSync('src/lua/prelude.lua', 'utf8') + readFileSync('src/lua/fixed-window.lua', 'utf8');
const single =
  prelude +
  `
local p = { limit = tonumber(ARGV[1]), window = tonumber(ARGV[2]) }
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 'a', 'b')
local st = { a = tonumber(v[1]), b = tonumber(v[2]) }
local allowed, remaining, reset, retry, delay, ns = ALG[1](st, now, tonumber(ARGV[3]), p)
if allowed then
  redis.call('HSET', KEYS[1], 'a', ns.a, 'b', ns.b)
  redis.call('PEXPIRE', KEYS[1], math.max(1, ns.a + p.window - now))
end
return { allowed and 1 or 0, remaining, reset, retry, delay }
`;
c.defineCommand('single', { numberOfKeys: 1, lua: single });
const keys = Array.from({ length: 10000 }, (_, i) => `u${i}`);
for (let r = 0; r < 2; r++) {
  await c.config('RESETSTAT');
  console.log(
    'single',
    Math.round(
      await concurrentOpsPerSecond(20000, 64, (i) => (c as any).single(keys[i % 10000], 1e9, 60000, 1)),
    ),
  );
  console.log(
    (await c.info('commandstats'))
      .split('\n')
      .filter((l) => l.startsWith('cmdstat_evalsha'))
      .join('\n'),
  );
}
c.disconnect();
await redis.stop();
process.exit(0);
