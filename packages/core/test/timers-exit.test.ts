import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/timers-exit.ts', import.meta.url));

/** Runs the fixture to its own exit (it never calls process.exit); killed after 20 s (code null). */
function runFixture(mode: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', fixture], {
    env: { ...process.env, MODE: mode },
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, out: out.trim() });
    });
  });
}

describe('timers and the process lifetime (child process)', () => {
  it('a process whose deadlines, delays, clock and breaker are done exits on its own', async () => {
    const { code, out } = await runFixture('settled');
    expect(out).toBe('ok,ok,stopped,later,open');
    expect(code).toBe(0);
  }, 30_000);

  it('a process awaiting only a deadline or a delay stays alive until it answers', async () => {
    const { code, out } = await runFixture('timeout');
    expect(out).toBe('NOA_TIMEOUT,waited');
    expect(code).toBe(0);
  }, 30_000);
});
