import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const redisSkip = (await isReachable('redis')) ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (redisSkip) console.log(redisSkip);

const fixture = fileURLToPath(new URL('./fixtures/acquire-exit.ts', import.meta.url));

/** Runs the fixture to its own exit (it never calls process.exit); killed after 30 s. */
function runFixture(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const { REDIS_URL: _inherited, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', fixture], {
    env: { ...inherited, ...env },
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  // Generous: a process kept alive by a timer of 24.8 days would be killed here, with code null.
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, out: out.trim() });
    });
  });
}

const stores: [string, Record<string, string>, boolean][] = [
  ['memory', {}, true],
  ['redis', { REDIS_URL: serviceUrl('redis') }, redisSkip === undefined],
];

describe('a process whose only work is limiter.acquire()', () => {
  for (const [store, env, available] of stores) {
    it.skipIf(!available)(
      `${store}: stays alive until its waiting acquire() is admitted (exit 0, not 13 with the await unsettled)`,
      async () => {
        const { code, out } = await runFixture({ ...env, MODE: 'admit', PREFIX: `${uniqueName('rlx')}:` });
        expect(out).toBe('admitted:allowed');
        expect(code).toBe(0);
      },
      40_000,
    );

    it.skipIf(!available)(
      `${store}: exits on its own after close() with waiters of 24.8 days pending (queued, with an abort signal, waiting out a delay)`,
      async () => {
        // The fixture's day window must refuse its waiters until close(): a child started within a
        // minute of midnight (UTC, the window's edge) would see them admitted in the next day.
        await awayFromWindowEdge(86_400_000, 60_000);
        const { code, out } = await runFixture({ ...env, MODE: 'close', PREFIX: `${uniqueName('rlx')}:` });
        expect(out).toBe('ClosedError,ClosedError,ClosedError,ClosedError');
        expect(code).toBe(0);
      },
      40_000,
    );
  }
});
