/**
 * How long a short `getOrSetMany` run over 10,000 values in grace takes from its factory's settle
 * to its values being in L2 (the call resolves then, `writeMode: 'await'`), and how many
 * extension script calls (`extend-if-unchanged.lua`, one per value, in batches of 256) it sent,
 * in all and after the settle. Not part of `pnpm bench` (no anchor: a measurement of our own
 * change, quoted in docs/consistency.md, "A run that outlasts the value it replaces"). Run from the
 * package: `node --conditions=@noa/source --import tsx bench/many-run-settle.ts`, with
 * REDIS_URL set (its own key prefix, dropped after); KEYS and ROUNDS change the 10,000 and 5.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Cache } from '../src/index.js';
import { observingEvalsha } from '../test/integration/evalsha-observer.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const count = Number(process.env.KEYS ?? 10_000);
const rounds = Number(process.env.ROUNDS ?? 5);

/** `client`, counting EVALSHA calls on value keys (the extension's, the writes'). */
function counting(client: Redis, prefix: string) {
  const calls: { sha: string; at: number }[] = [];
  const proxy = observingEvalsha(client, (sha, first) => {
    if (first.startsWith(`${prefix}v:`)) calls.push({ sha, at: performance.now() });
  });
  return { client: proxy, calls };
}

async function round(index: number) {
  const prefix = `bench-many-settle-${randomUUID().slice(0, 8)}:`;
  const keys = Array.from({ length: count }, (_, key) => `k${key}`);
  const raw = new Redis(url);
  const other = new Redis(url);
  const counted = counting(raw, prefix);
  const options = { prefix, bus: false as const, operationTimeoutMs: 5_000 };
  const a = new Cache({ redis: counted.client, ...options });
  const b = new Cache({ redis: other, ...options });
  await Promise.all([a.ready(), b.ready()]);
  await b.setMany(keys.map((key) => ({ key, value: 'first', ttlMs: 50, graceMs: 60_000 })));
  await delay(100);
  let settledAt = 0;
  const startedAt = performance.now();
  const values = await a.getOrSetMany(keys, async (asked) => {
    settledAt = performance.now();
    return asked.map(() => 'refreshed');
  });
  const doneAt = performance.now();
  const extensionSha = counted.calls[0]?.sha;
  const extensions = counted.calls.filter((call) => call.sha === extensionSha);
  const afterSettle = extensions.filter((call) => call.at >= settledAt).length;
  const read = await b.getMany(keys);
  const readable = read.filter((value) => value === 'refreshed').length;
  const row = {
    round: index,
    settleMs: Math.round(settledAt - startedAt),
    settleToWrittenMs: Math.round(doneAt - settledAt),
    extensionCalls: extensions.length,
    extensionCallsAfterSettle: afterSettle,
    served: values.filter((value) => value === 'refreshed').length,
    readable,
  };
  await Promise.all([a.close(), b.close()]);
  const cleaner = new Redis(url);
  let cursor = '0';
  do {
    const [next, found] = await cleaner.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (found.length > 0) await cleaner.unlink(...found);
  } while (cursor !== '0');
  for (const client of [raw, other, cleaner]) client.disconnect();
  return row;
}

const rows = [];
for (let index = 0; index < rounds; index += 1) rows.push(await round(index));
console.table(rows);
const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)];
console.log(
  JSON.stringify({
    keys: count,
    medianSettleToWrittenMs: median(rows.map((row) => row.settleToWrittenMs)),
    medianExtensionCalls: median(rows.map((row) => row.extensionCalls)),
    medianExtensionCallsAfterSettle: median(rows.map((row) => row.extensionCallsAfterSettle)),
  }),
);
