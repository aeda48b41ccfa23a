import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const demoDir = fileURLToPath(new URL('..', import.meta.url));

// The entry point as `pnpm demo` runs it, in memory mode whatever the caller's environment.
const startDemo = (port: number, env: Record<string, string> = {}) => {
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', 'src/server.ts'], {
    cwd: demoDir,
    env: { ...process.env, PORT: String(port), REDIS_URL: '', DATABASE_URL: '', AMQP_URL: '', ...env },
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  return { child, output: () => output };
};

describe('demo entry point', () => {
  const occupier = createServer();
  let port = 0;
  beforeAll(async () => {
    occupier.listen(0);
    await once(occupier, 'listening');
    port = (occupier.address() as { port: number }).port;
  });
  afterAll(() => occupier.close());

  it('exits 1 naming the port when it is taken, instead of announcing it', async () => {
    const demo = startDemo(port);
    const [code] = await once(demo.child, 'exit');
    expect(code).toBe(1);
    expect(demo.output()).toContain(`could not listen on port ${port}`);
    expect(demo.output()).not.toContain('listening on');
  }, 30_000);

  it('on SIGTERM answers 503 on /readyz and /livez first, still serving, then closes and exits 0', async () => {
    const spare = createServer();
    spare.listen(0);
    await once(spare, 'listening');
    const freePort = (spare.address() as { port: number }).port;
    await new Promise((resolve) => spare.close(resolve));
    const demo = startDemo(freePort, { SHUTDOWN_DELAY_MS: '1500' });
    const exited = once(demo.child, 'exit');
    try {
      for (let tries = 0; tries < 300 && !demo.output().includes('listening on'); tries += 1)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(demo.output()).toContain('listening on');
      const base = `http://127.0.0.1:${freePort}`;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/livez`)).status).toBe(200);
      demo.child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Within the delay the server still answers, but the probes say it is going away.
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, shuttingDown: true });
      expect((await fetch(`${base}/livez`)).status).toBe(503);
      expect((await fetch(`${base}/api/hello`)).status).toBe(200);
      const [code] = await exited;
      expect(code).toBe(0);
    } finally {
      demo.child.kill('SIGKILL');
    }
  }, 30_000);
});
