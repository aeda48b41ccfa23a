/**
 * Focused, interleaved runs of the two hot-path rows of issue 12, with Node CPU per job
 * (`process.cpuUsage`, less noisy than wall time on a shared machine):
 *
 *   node --conditions=@noa/source --import tsx bench/focus.ts rabbit [rounds]
 *   node --conditions=@noa/source --import tsx bench/focus.ts redis-p0 [rounds]
 *   node --conditions=@noa/source --import tsx bench/focus.ts rabbit-ours|redis-ours [rounds]  (ours only, for --cpu-prof)
 *
 * Not part of `pnpm bench`: a tool for profiling the worker's per-job cost.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import { median } from '@noa/testkit/bench';
import amqp from 'amqplib';
import { Queue as BullQueue, type Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';
import { Queue, Worker } from '../src/index.js';
import { RabbitMqProvider } from '../src/rabbitmq.js';
import { RedisProvider } from '../src/redis.js';
import { bullDrain, rawConsume } from './anchors.js';

const mode = process.argv[2] ?? 'rabbit';
const rounds = Number(process.argv[3] ?? 7);
const jobsOf = (count: number) => Array.from({ length: count }, (_, n) => ({ name: 'noop', data: { n } }));

// Counts AMQP ack frames (each is one socket write through amqplib's mux) and the time from a
// delivery reaching its consumer callback to its ack frame being sent.
let ackFrames = 0;
/** FOCUS_TRACE=1: also the time from receipt to our handler's start (parses every message once more). */
const trace = process.env.FOCUS_TRACE === '1';
const receivedById = new Map<string, number>();
/** Receipt times of every delivery of a timed run: where the stalls (gaps ≥ 0.5 ms) are. */
const recvTimes: number[] = [];
const toHandler: number[] = [];
/** FOCUS_TRACE=1: a timeline of events (ms, what) for a window of the second timed run. */
const timeline: [number, string][] = [];
const mark = (what: string) => {
  if (trace && timeline.length < 3000 && tracedRun === 3 && performance.now() > traceFrom)
    timeline.push([performance.now(), what]);
};
let tracedRun = 0;
let traceFrom = 0;
let ackLatencyMs = 0;
let acked = 0;
{
  const require = createRequire(import.meta.url);
  const { Channel } = require(
    require.resolve('amqplib').replace(/channel_api\.js$/, 'lib/channel_model.js'),
  ) as {
    Channel: { prototype: Record<string, (...args: never[]) => unknown> };
  };
  const received = new Map<unknown, Map<number, number>>();
  const ack = Channel.prototype.ack!;
  Channel.prototype.ack = function (this: unknown, message: amqp.ConsumeMessage, allUpTo?: boolean) {
    ackFrames += 1;
    mark(`ack ${message.fields.deliveryTag}${allUpTo ? ' multiple' : ''}`);
    const now = performance.now();
    const times = received.get(this);
    const tag = message.fields.deliveryTag;
    if (times) {
      for (const [key, at] of times) {
        if (key === tag || (allUpTo && key < tag)) {
          ackLatencyMs += now - at;
          acked += 1;
          times.delete(key);
        }
      }
    }
    return ack.call(this as never, message as never, allUpTo as never);
  } as never;
  const consume = Channel.prototype.consume!;
  Channel.prototype.consume = function (
    this: unknown,
    queue: string,
    callback: (message: amqp.ConsumeMessage | null) => void,
    options?: unknown,
  ) {
    const times = new Map<number, number>();
    received.set(this, times);
    return consume.call(
      this as never,
      queue as never,
      ((message: amqp.ConsumeMessage | null) => {
        if (message) {
          const now = performance.now();
          recvTimes.push(now);
          times.set(message.fields.deliveryTag, now);
          if (trace) {
            receivedById.set((JSON.parse(message.content.toString()) as { i: string }).i, now);
            mark(`recv ${message.fields.deliveryTag}`);
          }
        }
        callback(message);
      }) as never,
      options as never,
    );
  } as never;
}

/** Calls of the provider's hot-path methods (exchange, waitForWork, settleNow) per timed run. */
const calls: Record<string, number> = {};
function countCalls(provider: Record<string, unknown>): void {
  for (const name of ['exchange', 'waitForWork', 'settleNow']) {
    const method = provider[name] as ((...args: unknown[]) => unknown) | undefined;
    if (!method) continue;
    calls[name] = 0;
    provider[name] = (...args: unknown[]) => {
      calls[name]! += 1;
      if (name !== 'settleNow') mark(name);
      return method.apply(provider, args);
    };
  }
}

/** Socket writes (syscalls, unless corked) during a timed run. */
let socketWrites = 0;
{
  const write = Socket.prototype.write;
  Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    socketWrites += 1;
    return write.apply(this, args);
  } as Socket['write'];
}

/** GC pauses during a timed run. */
let gcCount = 0;
let gcMs = 0;
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcCount += 1;
    gcMs += entry.duration;
    gcMaxMs = Math.max(gcMaxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });

interface Sample {
  rate: number;
  cpuUsPerJob: number;
  jobsPerAck: number;
  ackLatencyUs: number;
}

/**
 * With FOCUS_PROFILE=<prefix>, CPU profiles of the first timed round of each side only (the
 * queue fill is left out): `<prefix>-2.cpuprofile` (ours), `<prefix>-3.cpuprofile` (theirs).
 */
const profileFile = process.env.FOCUS_PROFILE;
/** With FOCUS_HEAP=<file>, a sampling heap profile (allocations, collected ones included) of the first timed round. */
const heapFile = process.env.FOCUS_HEAP;
const session = profileFile || heapFile ? new Session() : undefined;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
}
let profiled = 0;

async function timed(count: number, work: () => Promise<void>): Promise<Sample> {
  const run = profiled++;
  const profiling = profileFile !== undefined && (run === 2 || run === 3);
  const heapProfiling = heapFile !== undefined && (run === 2 || run === 3);
  if (profiling) await session!.post('Profiler.start');
  if (heapProfiling) {
    await session!.post('HeapProfiler.startSampling', {
      samplingInterval: 256,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  }
  tracedRun += 1;
  socketWrites = 0;
  gcCount = 0;
  gcMs = 0;
  gcMaxMs = 0;
  recvTimes.length = 0;
  traceFrom = performance.now() + 200;
  const acksBefore = ackFrames;
  ackLatencyMs = 0;
  acked = 0;
  for (const name of Object.keys(calls)) calls[name] = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1_000;
  const used = process.cpuUsage(cpu);
  if (trace && timeline.length > 0 && tracedRun === 3) {
    const t0 = timeline[0]![0];
    for (const [at, what] of timeline)
      console.log(`${((at - t0) * 1_000).toFixed(0).padStart(6)} µs ${what}`);
  }
  // GC entries are delivered asynchronously: read them after a turn of the loop.
  await new Promise((resolve) => setImmediate(resolve));
  console.log(`socket writes: ${(count / Math.max(1, socketWrites)).toFixed(1)} jobs/write`);
  console.log(`gc: ${gcCount} pauses, ${gcMs.toFixed(1)} ms, max ${gcMaxMs.toFixed(2)} ms`);
  if (recvTimes.length > 1) {
    const gaps = [0, 0, 0, 0];
    const sums = [0, 0, 0, 0];
    for (let index = 1; index < recvTimes.length; index += 1) {
      const gap = recvTimes[index]! - recvTimes[index - 1]!;
      const bucket = gap < 0.5 ? 0 : gap < 2 ? 1 : gap < 10 ? 2 : 3;
      gaps[bucket]! += 1;
      sums[bucket]! += gap;
    }
    const total = recvTimes.at(-1)! - recvTimes[0]!;
    console.log(
      `receipt gaps over ${total.toFixed(0)} ms: <0.5ms ${gaps[0]} (${sums[0]!.toFixed(0)} ms), 0.5-2ms ${gaps[1]} (${sums[1]!.toFixed(0)} ms), 2-10ms ${gaps[2]} (${sums[2]!.toFixed(0)} ms), ≥10ms ${gaps[3]} (${sums[3]!.toFixed(0)} ms)`,
    );
  }
  if (trace && toHandler.length > 0) {
    const sorted = toHandler.sort((x, y) => x - y);
    const at = (q: number) => (sorted[Math.floor(q * (sorted.length - 1))]! * 1_000).toFixed(0);
    const mean = (sorted.reduce((sum, value) => sum + value, 0) * 1_000) / sorted.length;
    console.log(
      `receipt → handler µs: mean ${mean.toFixed(0)} p50 ${at(0.5)} p90 ${at(0.9)} p99 ${at(0.99)} max ${at(1)}`,
    );
    toHandler.length = 0;
  }
  if (calls.exchange)
    console.log(
      Object.entries(calls)
        .map(([name, n]) => `${name} ${(n / count).toFixed(3)}/job`)
        .join(', '),
    );
  if (heapProfiling) {
    const { profile } = await session!.post('HeapProfiler.stopSampling');
    writeFileSync(`${heapFile}-${run}.heapprofile`, JSON.stringify(profile));
  }
  if (profiling) {
    const { profile } = await session!.post('Profiler.stop');
    writeFileSync(`${profileFile}-${run}.cpuprofile`, JSON.stringify(profile));
  }
  return {
    rate: count / seconds,
    cpuUsPerJob: (used.user + used.system) / count,
    jobsPerAck: count / Math.max(1, ackFrames - acksBefore),
    ackLatencyUs: (ackLatencyMs * 1_000) / Math.max(1, acked),
  };
}

async function interleave(
  label: string,
  ours: () => Promise<Sample>,
  theirs: (() => Promise<Sample>) | undefined,
): Promise<void> {
  await ours();
  await theirs?.();
  const ratios: number[] = [];
  const oursCpu: number[] = [];
  const theirsCpu: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    let a: Sample;
    let b: Sample | undefined;
    if (round % 2 === 0 || !theirs) {
      a = await ours();
      b = await theirs?.();
    } else {
      b = await theirs();
      a = await ours();
    }
    oursCpu.push(a.cpuUsPerJob);
    if (b) {
      theirsCpu.push(b.cpuUsPerJob);
      ratios.push(a.rate / b.rate);
    }
    console.log(
      `${label} round ${round}: ours ${Math.round(a.rate)}/s ${a.cpuUsPerJob.toFixed(1)} µs cpu/job ${a.jobsPerAck.toFixed(1)} jobs/ack ${a.ackLatencyUs.toFixed(0)} µs to ack` +
        (b
          ? ` | theirs ${Math.round(b.rate)}/s ${b.cpuUsPerJob.toFixed(1)} µs cpu/job ${b.jobsPerAck.toFixed(1)} jobs/ack ${b.ackLatencyUs.toFixed(0)} µs to ack | ratio ${(a.rate / b.rate).toFixed(3)}`
          : ''),
    );
  }
  const sorted = [...ratios].sort((x, y) => x - y);
  console.log(
    `${label}: ours cpu/job median ${median(oursCpu).toFixed(1)} µs` +
      (ratios.length
        ? `, theirs ${median(theirsCpu).toFixed(1)} µs; ratio median ${median(ratios).toFixed(3)} (min ${sorted[0]!.toFixed(3)}, max ${sorted.at(-1)!.toFixed(3)})`
        : ''),
  );
}

if (mode.startsWith('rabbit')) {
  const url = serviceUrl('rabbitmq');
  if (!(await isReachable('rabbitmq'))) throw new Error(`no RabbitMQ at ${url}`);
  const provider = new RabbitMqProvider({ url });
  countCalls(provider as unknown as Record<string, unknown>);
  const raw = await amqp.connect(url, { noDelay: true });
  const count = Number(process.env.FOCUS_COUNT ?? 20_000);
  const filled = async () => {
    const queue = new Queue({ name: uniqueName('focus'), provider });
    for (let index = 0; index < count; index += 10_000) {
      await queue.addBulk(jobsOf(Math.min(10_000, count - index)));
    }
    return queue;
  };
  const ours = async () => {
    const queue = await filled();
    let worker: Worker | undefined;
    const sample = await timed(count, async () => {
      await new Promise<void>((resolve) => {
        let done = 0;
        worker = new Worker({
          queue,
          concurrency: 100,
          handler: trace
            ? (job) => {
                const at = receivedById.get(job.id);
                if (at !== undefined) toHandler.push(performance.now() - at);
                mark(`handler ${job.id}`);
              }
            : () => undefined,
        });
        worker.on('completed', () => {
          done += 1;
          if (done === count) resolve();
        });
      });
    });
    await worker?.close();
    await provider.deleteQueue(queue.name);
    return sample;
  };
  const theirs = async () => {
    const queue = await filled();
    let channel: amqp.Channel | undefined;
    const sample = await timed(count, async () => {
      channel = await rawConsume(raw, queue.name, count, true);
    });
    await channel?.close();
    await provider.deleteQueue(queue.name);
    return sample;
  };
  try {
    await interleave('rabbit consume', ours, mode === 'rabbit-ours' ? undefined : theirs);
  } finally {
    await provider.close();
    await raw.close();
  }
} else {
  const server = await startPrivateRedis();
  const connection = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null };
  const admin = new Redis(connection);
  const client = new Redis(connection);
  const provider = new RedisProvider({ connection: client });
  countCalls(provider as unknown as Record<string, unknown>);
  const count = Number(process.env.FOCUS_COUNT ?? 3_000);
  const ours = async () => {
    await admin.flushall();
    const queue = new Queue({ name: uniqueName('ours'), provider });
    await queue.addBulk(jobsOf(count));
    let worker: Worker | undefined;
    const sample = await timed(count, async () => {
      await new Promise<void>((resolve) => {
        let done = 0;
        worker = new Worker({ queue, concurrency: 1, prefetch: 0, handler: () => undefined });
        worker.on('completed', () => {
          done += 1;
          if (done === count) resolve();
        });
      });
    });
    await worker?.close();
    return sample;
  };
  const theirs = async () => {
    await admin.flushall();
    const name = uniqueName('bull');
    const queue = new BullQueue(name, {
      connection,
      defaultJobOptions: { removeOnComplete: { count: 1_000 } },
    });
    await queue.addBulk(jobsOf(count));
    let worker: BullWorker | undefined;
    const sample = await timed(count, async () => {
      worker = await bullDrain(name, connection, 1, count);
    });
    await worker?.close();
    await queue.close();
    return sample;
  };
  try {
    await interleave('redis c1 prefetch 0', ours, mode === 'redis-ours' ? undefined : theirs);
  } finally {
    await provider.close();
    client.disconnect();
    admin.disconnect();
    await server.stop();
  }
}
