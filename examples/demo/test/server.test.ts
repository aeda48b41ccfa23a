import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const demoDir = fileURLToPath(new URL('..', import.meta.url));

// The entry point as `pnpm demo` runs it, in memory mode whatever the caller's environment.
const startDemo = (port: number) => {
  const child = spawn(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', 'src/server.ts'], {
    cwd: demoDir,
    env: { ...process.env, PORT: String(port), REDIS_URL: '', DATABASE_URL: '', AMQP_URL: '' },
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
});
