#!/usr/bin/env node
// Build step of packages with Redis Lua scripts: copies the package's src/**/*.lua into dist/
// with the same relative layout (tsc emits only JavaScript). Run from the package directory.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

const root = process.cwd();
const source = path.join(root, 'src');
const target = path.join(root, 'dist');

let copied = 0;
for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.lua')) continue;
  const from = path.join(entry.parentPath, entry.name);
  const to = path.join(target, path.relative(source, from));
  mkdirSync(path.dirname(to), { recursive: true });
  copyFileSync(from, to);
  copied += 1;
}
console.log(`copy-lua: ${copied} file(s) into ${path.relative(process.cwd(), target) || '.'}/`);
