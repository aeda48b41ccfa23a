import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const workspaceRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** What {@link typecheckUserFile} found. */
export interface UserTypecheck {
  /** tsc's error lines about the user's file (empty: it type-checks). */
  errors: string[];
  /** tsc's errors about its own configuration or files (TS5xxx, TS6xxx): tsc did not judge the file. */
  setupErrors: string[];
  /** tsc's exit status. */
  status: number | null;
}

/**
 * Runs `tsc` (the workspace's TypeScript, as its own process) over one file written as a user of
 * a package would (`test/types/*.ts`), with a tsconfig extending the workspace's base and
 * `compilerOptions` on top, and reports the errors in that file. The packages resolve to their
 * sources (`@noa/source`); only the user's file is judged, so the package's own sources are
 * compiled under the workspace's settings unless `compilerOptions` reach them (`skipLibCheck`
 * does not: they are sources, not declarations).
 */
export function typecheckUserFile(
  file: string,
  compilerOptions: Record<string, unknown> = {},
): UserTypecheck {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const dir = mkdtempSync(path.join(tmpdir(), 'noa-user-typecheck-'));
  try {
    const config = path.join(dir, 'tsconfig.json');
    writeFileSync(
      config,
      JSON.stringify({
        extends: path.join(workspaceRoot, 'tsconfig.base.json'),
        compilerOptions: {
          noEmit: true,
          customConditions: ['@noa/source'],
          allowImportingTsExtensions: true,
          types: ['node'],
          typeRoots: [path.join(workspaceRoot, 'node_modules', '@types')],
          ...compilerOptions,
        },
        files: [file],
      }),
    );
    const compiled = spawnSync(process.execPath, [tsc, '-p', config], { encoding: 'utf8', timeout: 120_000 });
    const lines = `${compiled.stdout}\n${compiled.stderr}`.split('\n');
    const name = path.basename(file);
    return {
      errors: lines.filter((line) => line.includes(name)),
      setupErrors: lines.filter((line) => /error TS(5|6)\d{3}/.test(line)),
      status: compiled.status,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
