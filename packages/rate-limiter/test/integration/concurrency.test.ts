import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { algorithmNames } from '../../src/index.js';

const skip = (await isReachable('redis')) ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const fixture = fileURLToPath(new URL('./fixtures/hammer.ts', import.meta.url));
const processes = 4;
const checksEach = 200;
const limit = 300;
const skews = [-200, -70, 90, 200];

/** A hammer child: `next()` resolves with its next stdout line. */
interface Hammer {
  child: ChildProcess;
  next(): Promise<string>;
  exited: Promise<void>;
}

function startHammer(env: Record<string, string>): Hammer {
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', fixture], {
    env: { ...process.env, ...env },
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`hammer exited ${code}`))));
  });
  // Lines are read as they come: a child that dies instead of answering rejects the wait.
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const line = await Promise.race([lines.next(), exited.then(() => ({ done: true, value: undefined }))]);
    if (line.done) throw new Error('hammer ended without an answer');
    return line.value as string;
  };
  exited.catch(() => {});
  return { child, next, exited };
}

describe.skipIf(skip !== undefined)(
  `${processes} processes × ${checksEach} concurrent checks on one key`,
  () => {
    let hammers: Hammer[] = [];
    // One child per skewed clock for all the algorithms, each ready (loaded and connected) first.
    beforeAll(async () => {
      hammers = skews.map((skew) =>
        startHammer({
          REDIS_URL: serviceUrl('redis'),
          LIMIT: String(limit),
          CHECKS: String(checksEach),
          SKEW_MS: String(skew),
        }),
      );
      for (const line of await Promise.all(hammers.map((hammer) => hammer.next())))
        expect(line).toBe('ready');
    });
    afterAll(async () => {
      for (const { child } of hammers) child.stdin!.end();
      await Promise.all(hammers.map((hammer) => hammer.exited));
    });

    for (const algorithm of algorithmNames) {
      it(`${algorithm}: admits exactly the limit, with client clocks skewed ±200 ms`, async () => {
        const prefix = `${uniqueName('rlc')}:`;
        // A day's fixed window: the burst (well under a second) must not straddle midnight.
        await awayFromWindowEdge(86_400_000, 10_000);
        // Released together: one line to each child.
        for (const { child } of hammers) child.stdin!.write(`${JSON.stringify({ algorithm, prefix })}\n`);
        const reports = (await Promise.all(hammers.map((hammer) => hammer.next()))).map(
          (text) => JSON.parse(text) as { admitted: number; failModeAnswers: number },
        );
        expect(reports.reduce((sum, report) => sum + report.failModeAnswers, 0)).toBe(0);
        expect(reports.reduce((sum, report) => sum + report.admitted, 0)).toBe(limit);
      });
    }
  },
);
