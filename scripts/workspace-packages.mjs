// The packages under packages/ with their manifests: shared by the repo's check scripts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Repository root. */
export const root = path.resolve(import.meta.dirname, '..');

/** `{ name, dir, manifest }` for every folder of packages/ that has a package.json, sorted. */
export function workspacePackages() {
  const packagesDir = path.join(root, 'packages');
  return readdirSync(packagesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(packagesDir, entry.name, 'package.json')))
    .map((entry) => {
      const dir = path.join(packagesDir, entry.name);
      return {
        name: entry.name,
        dir,
        manifest: JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}
