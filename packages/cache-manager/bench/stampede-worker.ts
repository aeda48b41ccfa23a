// One process of the stampede benchmark: `ours` or `bentocache`, both with Redis L2 + bus.
// Waits for "go" on stdin, fires N concurrent getOrSet on one cold key, prints factory runs.

import { createInterface } from 'node:readline';
import { delay } from '@noa/core';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis';
import { Redis } from 'ioredis';
import { Cache } from '../src/index.js';

const [impl, url, prefix, key, concurrencyText, factoryMsText] = process.argv.slice(2) as [
  'ours' | 'bentocache',
  string,
  string,
  string,
  string,
  string,
];
const concurrency = Number(concurrencyText);
const factoryMs = Number(factoryMsText);
const redis = new Redis(url);
let runs = 0;
const factory = async () => {
  runs += 1;
  await delay(factoryMs);
  return { pid: process.pid };
};

let getOrSet: () => Promise<unknown>;
let close: () => Promise<void>;
if (impl === 'ours') {
  const cache = new Cache({ redis, prefix });
  await cache.ready();
  getOrSet = () => cache.getOrSet(key, factory, { ttlMs: 60_000 });
  close = () => cache.close();
} else {
  const { port, hostname } = new URL(url);
  const bento = new BentoCache({
    default: 'cache',
    prefix,
    stores: {
      cache: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 10_000 }))
        .useL2Layer(redisDriver({ connection: redis }))
        .useBus(redisBusDriver({ connection: { host: hostname, port: Number(port) } })),
    },
  });
  getOrSet = () => bento.getOrSet({ key, factory, ttl: '1m' });
  close = () => bento.disconnectAll();
}

process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'go') continue;
  await Promise.all(Array.from({ length: concurrency }, getOrSet));
  process.stdout.write(`${JSON.stringify({ runs })}\n`);
  break;
}
await close();
redis.disconnect();
process.exit(0);
