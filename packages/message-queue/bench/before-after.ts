/**
 * Before/after evidence for a hot-path change, three ways interleaved in one process: ours now,
 * ours from another copy of src/ (BASE_SRC, e.g. `git archive <commit> packages/message-queue/src`
 * unpacked inside the package, so it resolves the same dependencies) and the anchor. Rounds
 * rotate the order; each prints rate and Node CPU per job; the summary gives the medians and
 * the per-round ratios to the anchor.
 *
 *   BASE_SRC=$PWD/.base/src node --conditions=@noa/source --import tsx bench/before-after.ts rabbit|redis-p0 [rounds]
 *
 * Not part of `pnpm bench`.
 */
import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import { median } from '@noa/testkit/bench';
import amqp from 'amqplib';
import { Queue as BullQueue, type Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';
import { bullDrain, rawConsume } from './anchors.js';

type Module = typeof import('../src/index.js') &
  typeof import('../src/redis.js') &
  typeof import('../src/rabbitmq.js');
const mode = process.argv[2] ?? 'rabbit';
const rounds = Number(process.argv[3] ?? 7);
const baseDir = process.env.BASE_SRC;
if (!baseDir) throw new Error('set BASE_SRC to the src/ directory of the code before the change');
/** The main entry and, where the version has them, its driver entries (`redis.js`, `rabbitmq.js`). */
async function load(dir: string): Promise<Module> {
  const optional = (file: string) => import(`${dir}/${file}`).catch(() => ({}));
  return {
    ...(await import(`${dir}/index.js`)),
    ...(await optional('redis.js')),
    ...(await optional('rabbitmq.js')),
  };
}
const versions: [string, Module][] = [
  ['now', await load(new URL('../src', import.meta.url).pathname)],
  ['before', await load(baseDir)],
];
const jobsOf = (count: number) => Array.from({ length: count }, (_, n) => ({ name: 'noop', data: { n } }));

interface Sample {
  rate: number;
  cpuUsPerJob: number;
}

async function timed(count: number, work: () => Promise<void>): Promise<Sample> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1_000;
  const used = process.cpuUsage(cpu);
  return { rate: count / seconds, cpuUsPerJob: (used.user + used.system) / count };
}

async function compare(sides: [string, () => Promise<Sample>][]): Promise<void> {
  for (const [, run] of sides) await run();
  const samples = new Map<string, Sample[]>(sides.map(([name]) => [name, []]));
  for (let round = 0; round < rounds; round += 1) {
    const order = sides.map((_, index) => sides[(index + round) % sides.length]!);
    const line: string[] = [];
    for (const [name, run] of order) {
      const sample = await run();
      samples.get(name)!.push(sample);
      line.push(`${name} ${Math.round(sample.rate)}/s ${sample.cpuUsPerJob.toFixed(1)} µs`);
    }
    console.log(`round ${round}: ${line.join(' | ')}`);
  }
  const anchor = samples.get('anchor')!;
  for (const [name, list] of samples) {
    const rates = median(list.map((sample) => sample.rate));
    const cpu = median(list.map((sample) => sample.cpuUsPerJob));
    if (name === 'anchor') {
      console.log(`${name}: ${Math.round(rates)}/s, ${cpu.toFixed(2)} µs CPU/job`);
      continue;
    }
    const ratios = list.map((sample, index) => sample.rate / anchor[index]!.rate).sort((a, b) => a - b);
    console.log(
      `${name}: ${Math.round(rates)}/s, ${cpu.toFixed(2)} µs CPU/job; ratio to anchor median ${median(ratios).toFixed(3)} (min ${ratios[0]!.toFixed(3)}, max ${ratios.at(-1)!.toFixed(3)})`,
    );
  }
}

if (mode === 'rabbit') {
  const url = serviceUrl('rabbitmq');
  if (!(await isReachable('rabbitmq'))) throw new Error(`no RabbitMQ at ${url}`);
  const count = Number(process.env.COUNT ?? 20_000);
  const providers = versions.map(
    ([name, module]) => [name, module, new module.RabbitMqProvider({ url })] as const,
  );
  const raw = await amqp.connect(url, { noDelay: true });
  const fill = providers[0]![2];
  const filled = async () => {
    const queue = new versions[0]![1].Queue({ name: uniqueName('ba'), provider: fill });
    for (let index = 0; index < count; index += 10_000) {
      await queue.addBulk(jobsOf(Math.min(10_000, count - index)));
    }
    return queue.name;
  };
  const ours = (module: Module, provider: InstanceType<Module['RabbitMqProvider']>) => async () => {
    const name = await filled();
    const queue = new module.Queue({ name, provider });
    let worker: InstanceType<Module['Worker']> | undefined;
    const sample = await timed(count, async () => {
      await new Promise<void>((resolve) => {
        let done = 0;
        worker = new module.Worker({ queue, concurrency: 100, handler: () => undefined });
        worker.on('completed', () => {
          done += 1;
          if (done === count) resolve();
        });
      });
    });
    await worker?.close();
    await fill.deleteQueue(name);
    return sample;
  };
  const theirs = async () => {
    const name = await filled();
    let channel: amqp.Channel | undefined;
    const sample = await timed(count, async () => {
      channel = await rawConsume(raw, name, count, true);
    });
    await channel?.close();
    await fill.deleteQueue(name);
    return sample;
  };
  try {
    await compare([
      ...providers.map(
        ([name, module, provider]) => [name, ours(module, provider)] as [string, () => Promise<Sample>],
      ),
      ['anchor', theirs],
    ]);
  } finally {
    for (const [, , provider] of providers) await provider.close();
    await raw.close();
  }
} else {
  const server = await startPrivateRedis();
  const connection = { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null };
  const admin = new Redis(connection);
  const clients: Redis[] = [];
  const redisProviders: { close(): Promise<void> }[] = [];
  const count = Number(process.env.COUNT ?? 5_000);
  const ours = (module: Module) => {
    const client = new Redis(connection);
    clients.push(client);
    const provider = new module.RedisProvider({ connection: client });
    redisProviders.push(provider);
    return async () => {
      await admin.flushall();
      const queue = new module.Queue({ name: uniqueName('ours'), provider });
      await queue.addBulk(jobsOf(count));
      let worker: InstanceType<Module['Worker']> | undefined;
      const sample = await timed(count, async () => {
        await new Promise<void>((resolve) => {
          let done = 0;
          worker = new module.Worker({ queue, concurrency: 1, prefetch: 0, handler: () => undefined });
          worker.on('completed', () => {
            done += 1;
            if (done === count) resolve();
          });
        });
      });
      await worker?.close();
      return sample;
    };
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
    await compare([
      ...versions.map(([name, module]) => [name, ours(module)] as [string, () => Promise<Sample>]),
      ['anchor', theirs],
    ]);
  } finally {
    for (const provider of redisProviders) await provider.close();
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await server.stop();
  }
}
