#!/usr/bin/env node
// After `pnpm build`: imports every publishable package's built entry the way a user's Node
// would (no @noa/source condition), so a missing .lua copy, a bad exports map or an import
// that only resolves to sources fails CI.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { workspacePackages } from './workspace-packages.mjs';

let failed = 0;
for (const { dir, manifest } of workspacePackages()) {
  if (manifest.private) continue;
  // `default` as well as `import`: a `default` entry is what lets CommonJS users require() it.
  const entry = manifest.exports?.['.']?.import ?? manifest.exports?.['.']?.default;
  if (typeof entry !== 'string') {
    failed += 1;
    console.error(`dist FAILED: ${manifest.name}: exports['.'] has no import or default entry`);
    continue;
  }
  try {
    const module = await import(pathToFileURL(path.join(dir, entry)).href);
    console.log(`dist ok: ${manifest.name} (${Object.keys(module).length} exports)`);
  } catch (error) {
    failed += 1;
    console.error(`dist FAILED: ${manifest.name}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
