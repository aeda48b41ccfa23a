import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { algorithmNames } from '../../src/index.js';

const skip = (await isReachable('redis')) ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const fixture = fileURLToPath(new URL('./fixtures/hammer.ts', import.meta.url));
const processes = 4;
const checksEach = 200;
const limit = 300;

function startChild(env: Record<string, string>): { child: ChildProcess; done: Promise<string> } {
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', fixture], {
    env: { ...process.env, ...env },
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (chunk) => {
    out += chunk;
  });
  const done = new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`hammer exited ${code}`))));
  });
  return { child, done };
}

describe.skipIf(skip !== undefined)(
  `${processes} processes × ${checksEach} concurrent checks on one key`,
  () => {
    for (const algorithm of algorithmNames) {
      it(`${algorithm}: admits exactly the limit, with client clocks skewed ±200 ms`, async () => {
        const prefix = `${uniqueName('rlc')}:`;
        const skews = [-200, -70, 90, 200];
        const children = skews.map((skew) =>
          startChild({
            REDIS_URL: serviceUrl('redis'),
            PREFIX: prefix,
            ALGORITHM: algorithm,
            LIMIT: String(limit),
            CHECKS: String(checksEach),
            SKEW_MS: String(skew),
          }),
        );
        // Give every child time to load and connect, then release them together.
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        for (const { child } of children) child.stdin!.end('go\n');
        const reports = (await Promise.all(children.map(({ done }) => done))).map(
          (text) => JSON.parse(text) as { admitted: number; failModeAnswers: number },
        );
        expect(reports.reduce((sum, report) => sum + report.failModeAnswers, 0)).toBe(0);
        expect(reports.reduce((sum, report) => sum + report.admitted, 0)).toBe(limit);
      });
    }
  },
);
