import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isReachable } from '@noa/testkit';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('../fixtures/idle-exit.ts', import.meta.url));

/** Longest a fixture may take to load, connect and query (its first output). */
const startupMs = 60_000;

/**
 * Runs the fixture; `{ exited: false }` when it was still running `aliveMs` after its first output
 * (then killed). Counted from the output, not the spawn: loading tsx and connecting took over 8 s
 * on a loaded machine; a fixture silent for `startupMs` is killed too.
 */
async function run(kind: string, allow: 'yes' | 'no', aliveMs: number) {
  const child = spawn(
    process.execPath,
    ['--conditions=@noa/source', '--import', 'tsx', fixture, kind, allow],
    {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    },
  );
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  let killed = false;
  const kill = () => {
    killed = true;
    child.kill('SIGKILL');
  };
  let killer = setTimeout(kill, startupMs);
  child.stdout.once('data', () => {
    clearTimeout(killer);
    killer = setTimeout(kill, aliveMs);
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(killer);
  return { out: out.trim(), exited: !killed, code };
}

const reachable = {
  pg: await isReachable('postgres'),
  mysql: await isReachable('mysql'),
  redis: await isReachable('redis'),
};

describe('allowExitOnIdle: an idle pool not closed lets the process exit (pg.Pool option)', () => {
  // Generous: the child loads tsx and connects; idle eviction would only come after 120 s.
  // Without the service the test is skipped (counted as skipped, not passed).
  it.for(['pg', 'mysql', 'redis'] as const)(
    '%s: exits after its query',
    { timeout: startupMs + 30_000 },
    async (kind, { skip }) => {
      if (!reachable[kind]) skip(`no ${kind} service`);
      const { out, exited, code } = await run(kind, 'yes', 25_000);
      expect(out).toBe('queried');
      expect(exited).toBe(true);
      expect(code).toBe(0);
    },
  );

  it(
    'pg without it: the idle connection keeps the process alive (the default, as pg.Pool)',
    async ({ skip }) => {
      if (!reachable.pg) skip('no Postgres');
      // Once it printed, give it a few seconds to exit; it must not.
      const { out, exited } = await run('pg', 'no', 8_000);
      expect(out).toBe('queried');
      expect(exited).toBe(false);
    },
    startupMs + 15_000,
  );
});
