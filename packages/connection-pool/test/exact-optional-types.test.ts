import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

// tsc over a user's file (test/types/exact-optional-user.ts) compiled with
// `exactOptionalPropertyTypes: true`, which strict codebases turn on: an optional option must take
// `undefined` too (`createPgPool({ primary, replicas: config.replicas })`, `db.connect({ signal:
// request.signal })`), as the zod-typed options and the runtime checks do. Only the user's file is
// judged: the package's own sources are compiled under the workspace's settings.
it('options whose values may be undefined type-check under exactOptionalPropertyTypes', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cp-exact-optional-'));
  try {
    const config = path.join(dir, 'tsconfig.json');
    writeFileSync(
      config,
      JSON.stringify({
        extends: path.join(here, '..', '..', '..', 'tsconfig.base.json'),
        compilerOptions: {
          noEmit: true,
          exactOptionalPropertyTypes: true,
          customConditions: ['@noa/source'],
          allowImportingTsExtensions: true,
          types: ['node'],
          typeRoots: [path.join(here, '..', '..', '..', 'node_modules', '@types')],
        },
        files: [path.join(here, 'types', 'exact-optional-user.ts')],
      }),
    );
    const compiled = spawnSync(process.execPath, [tsc, '-p', config], { encoding: 'utf8', timeout: 120_000 });
    const errors = compiled.stdout.split('\n').filter((line) => line.includes('exact-optional-user.ts'));
    expect(errors).toEqual([]);
    // tsc ran (a crash or a missing file reports no line of the user's file either).
    expect(compiled.stdout + compiled.stderr).not.toMatch(/error TS(5|6)\d{3}/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
