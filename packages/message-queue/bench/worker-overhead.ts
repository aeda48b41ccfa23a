/**
 * The worker layer's own CPU per job, without a backend: a provider that answers from
 * prebuilt records (no I/O, no decode), settling like RabbitMQ (`settleNow`) or like Redis
 * (through the next `exchange`). Jobs "arrive" `perArrival` at a time once per macrotask (like
 * deliveries read from a socket), so the worker's idle/wake cycle is part of the cost.
 *
 *   node --conditions=@noa/source --import tsx bench/worker-overhead.ts [jobs] [rounds] [perArrival]
 *
 * Not part of `pnpm bench`: a tool for profiling the worker's per-job cost.
 */
import { median } from '@noa/testkit/bench';
import { Registry } from 'prom-client';
import type { JobRecord, QueueProvider } from '../src/index.js';

// OVERHEAD_SRC=<dir> measures another copy of src/ (e.g. the code before a change) the same way.
const source = process.env.OVERHEAD_SRC ?? '../src';
const { MemoryProvider, Queue, Worker } = (await import(
  `${source}/index.js`
)) as typeof import('../src/index.js');
const { Wakers } = (await import(
  `${source}/providers/wakers.js`
)) as typeof import('../src/providers/wakers.js');

const jobs = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 5);
const perArrival = Number(process.argv[4] ?? 10);
/** OVERHEAD_ONLY=<text>: only the variants whose label contains it. */
const only = process.env.OVERHEAD_ONLY;

function record(n: number): JobRecord {
  return {
    id: `j${n}`,
    name: 'noop',
    data: { n },
    priority: 0,
    attempts: 3,
    backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000, jitter: 0.5 },
    removeOnComplete: false,
    attemptsMade: 0,
    errors: [],
    createdAt: 0,
    availableAt: 0,
  };
}

const pool = Array.from({ length: jobs }, (_, n) => record(n));

/** A backend that answers from memory at once; everything the worker does not call on its hot path throws. */
function nullProvider(settleNow: boolean): QueueProvider {
  let next = 0;
  let arrived = 0;
  const wakers = new Wakers();
  const arrive = () => {
    arrived = Math.min(pool.length, arrived + perArrival);
    wakers.wakeAll();
    if (arrived < pool.length) setImmediate(arrive);
  };
  setImmediate(arrive);
  const base = new MemoryProvider();
  const provider: QueueProvider = Object.create(base) as QueueProvider;
  Object.assign(provider, {
    async exchange(_queue: string, request: { fetch: number }) {
      const end = Math.min(arrived, next + request.fetch);
      const taken = pool.slice(next, end);
      next = end;
      return { jobs: taken };
    },
    waitForWork(_queue: string, timeoutMs: number, signal: AbortSignal) {
      return next < arrived ? Promise.resolve() : wakers.wait(timeoutMs, signal);
    },
    async onCancel() {
      return () => {};
    },
    async maintain() {
      return { recovered: 0, deadLettered: 0, removed: 0 };
    },
    async release() {},
    async extendLeases() {
      return { cancelled: [], lost: [] };
    },
  });
  if (settleNow) Object.assign(provider, { settleNow: () => true });
  else Object.assign(provider, { settleNow: undefined });
  return provider;
}

async function run(
  concurrency: number,
  prefetch: number | 'auto',
  settleNow: boolean,
  handler: () => unknown,
  extra: Record<string, unknown> = {},
): Promise<number> {
  const queue = new Queue({ name: 'overhead', provider: nullProvider(settleNow) });
  const cpu = process.cpuUsage();
  let worker: InstanceType<typeof Worker> | undefined;
  await new Promise<void>((resolve) => {
    let done = 0;
    worker = new Worker({ queue, concurrency, prefetch, handler, ...extra });
    worker.on('completed', () => {
      done += 1;
      if (done === jobs) resolve();
    });
  });
  const used = process.cpuUsage(cpu);
  await worker?.close();
  return (used.user + used.system) / jobs;
}

const sync = () => undefined;
const async = async () => undefined;
const variants: [string, number, number | 'auto', boolean, () => unknown, Record<string, unknown>?][] = [
  ['c100 settleNow (RabbitMQ-like), sync handler', 100, 'auto', true, sync],
  ['c100 settleNow (RabbitMQ-like), async handler', 100, 'auto', true, async],
  ['c1 prefetch 0 via exchange (Redis-like), sync handler', 1, 0, false, sync],
  ['c1 prefetch 0 via exchange (Redis-like), async handler', 1, 0, false, async],
  [
    'c100 settleNow, async handler, defaultTimeoutMs 30 s',
    100,
    'auto',
    true,
    async,
    { defaultTimeoutMs: 30_000 },
  ],
  [
    'c100 settleNow, async handler, with a metrics registry',
    100,
    'auto',
    true,
    async,
    { registry: new Registry() },
  ],
];
for (const [label, concurrency, prefetch, settleNow, handler, extra] of variants) {
  if (only && !label.includes(only)) continue;
  await run(concurrency, prefetch, settleNow, handler, extra);
  const samples: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    samples.push(await run(concurrency, prefetch, settleNow, handler, extra));
  }
  console.log(
    `${label}: ${median(samples).toFixed(2)} µs cpu/job (rounds: ${samples.map((s) => s.toFixed(2)).join(' ')})`,
  );
}
