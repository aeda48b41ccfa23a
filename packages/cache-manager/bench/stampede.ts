import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const worker = path.join(import.meta.dirname, 'stampede-worker.ts');
const packageDir = path.resolve(import.meta.dirname, '..');

/**
 * Starts `processes` workers of one implementation, releases them together on one cold key
 * and returns the total factory runs across processes.
 */
export async function stampedeRuns(
  impl: 'ours' | 'bentocache',
  url: string,
  prefix: string,
  processes: number,
  concurrency: number,
  factoryMs: number,
): Promise<number> {
  const key = `cold-${Math.random().toString(36).slice(2)}`;
  const children = Array.from({ length: processes }, () =>
    spawn(
      process.execPath,
      [
        '--conditions=@noa/source',
        '--import',
        'tsx',
        worker,
        impl,
        url,
        prefix,
        key,
        String(concurrency),
        String(factoryMs),
      ],
      { cwd: packageDir, stdio: ['pipe', 'pipe', 'inherit'] },
    ),
  );
  const exited = children.map((child) => new Promise((resolve) => child.once('exit', resolve)));
  const lines = children.map((child) => createInterface({ input: child.stdout })[Symbol.asyncIterator]());
  await Promise.all(lines.map((iterator) => iterator.next()));
  for (const child of children) child.stdin.write('go\n');
  const results = await Promise.all(lines.map((iterator) => iterator.next()));
  await Promise.all(exited);
  return results.reduce(
    (sum, result) => sum + (JSON.parse(String(result.value)) as { runs: number }).runs,
    0,
  );
}
