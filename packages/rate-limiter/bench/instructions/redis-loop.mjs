// The standalone Redis store's checks at 64 in flight over 10k keys (the bench's "redis, fixed
// window, 10k keys, 64 in flight" row), for counting the client's instructions under valgrind
// (see redis-count.sh): `node redis-loop.mjs <checks> <redis url> [in flight]` runs <checks> checks of the
// built package (run `pnpm build` first) after 20k untimed ones that load the function and warm
// the code (64 in flight unless told: 1 sends every check in the one-key short form), and prints the script calls they took (INFO commandstats, on a private server: the
// count of checks per call sets how much of a call's cost each check bears).
import { Redis } from 'ioredis';
import { createRateLimiter } from '../../dist/index.js';
import { RedisStore, recommendedRedisOptions } from '../../dist/redis.js';

const [checksArg, url, inFlightArg = '64'] = process.argv.slice(2);
const inFlight = Number(inFlightArg);
const checks = Number(checksArg);
const keys = Array.from({ length: 10_000 }, (_, index) => `user-${index}`);
const client = new Redis(url, recommendedRedisOptions);
const admin = new Redis(url);

async function run(total, prefix) {
  const limiter = createRateLimiter({
    store: new RedisStore({ client, prefix }),
    limits: [{ limit: 1_000_000_000, windowMs: 60_000 }],
    deadlineMs: 60_000,
  });
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const index = next;
      next += 1;
      await limiter.check(keys[index % keys.length]);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
}

const scriptCalls = async () => {
  const info = await admin.info('commandstats');
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_(fcall|evalsha|eval):calls=(\d+)/gm)) calls += Number(match[2]);
  return calls;
};
// The same keys warmed and counted: the counted checks create no key, so Redis's keyspace does not
// grow (and rehash) while they run, which moved a count by several percent.
await run(20_000, 'counted:');
const before = await scriptCalls();
await run(checks, 'counted:');
const calls = (await scriptCalls()) - before;
console.log(`${checks} checks, ${calls} script calls (${(checks / calls).toFixed(1)} checks per call)`);
client.disconnect();
admin.disconnect();
