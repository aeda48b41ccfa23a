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
  // Every entry: the main one and each subpath (`./pg`…) the exports map declares.
  const entries = Object.entries(manifest.exports ?? {}).filter(
    ([key]) => key === '.' || key.startsWith('./'),
  );
  if (!entries.some(([key]) => key === '.')) {
    failed += 1;
    console.error(`dist FAILED: ${manifest.name}: package.json has no exports['.']`);
  }
  for (const [key, conditions] of entries) {
    const label = key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`;
    // `default` as well as `import`: a `default` entry is what lets CommonJS users require() it.
    const entry = conditions?.import ?? conditions?.default;
    if (typeof entry !== 'string') {
      failed += 1;
      console.error(`dist FAILED: ${label}: exports['${key}'] has no import or default entry`);
      continue;
    }
    try {
      const module = await import(pathToFileURL(path.join(dir, entry)).href);
      console.log(`dist ok: ${label} (${Object.keys(module).length} exports)`);
    } catch (error) {
      failed += 1;
      console.error(`dist FAILED: ${label}: ${error.message}`);
    }
  }
}
process.exit(failed ? 1 : 0);
