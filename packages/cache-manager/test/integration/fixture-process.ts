import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const packageDir = path.resolve(import.meta.dirname, '../..');

/** A fixture script running in a child process, and the JSON lines it prints, by `type`. */
export interface FixtureProcess {
  child: ChildProcessWithoutNullStreams;
  /** The next message of `type` the child printed (already printed, or when it comes). */
  next(type: string): Promise<Record<string, unknown>>;
  /** Resolves when the child exits. */
  exited: Promise<unknown>;
}

/**
 * Runs `fixtures/<fixture>` (TypeScript, through tsx, with the package's source condition) with
 * `args` in a child process; its stderr is forwarded under `[<label> <pid>]`, and each JSON line it
 * prints on stdout is a message for {@link FixtureProcess.next} (other lines are ignored).
 */
export function spawnFixture(fixture: string, args: readonly string[], label: string): FixtureProcess {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@noa/source',
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'fixtures', fixture),
      ...args,
    ],
    { cwd: packageDir, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[${label} ${child.pid}] ${chunk}`));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const queue: Record<string, unknown>[] = [];
  const waiting: { type: string; resolve: (message: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const index = waiting.findIndex((wait) => wait.type === message.type);
    if (index >= 0) waiting.splice(index, 1)[0]!.resolve(message);
    else queue.push(message);
  });
  return {
    child,
    exited,
    next: (type) => {
      const index = queue.findIndex((message) => message.type === type);
      if (index >= 0) return Promise.resolve(queue.splice(index, 1)[0]!);
      return new Promise((resolve) => waiting.push({ type, resolve }));
    },
  };
}
