#!/usr/bin/env node
// The packages as a user meets them: `pnpm pack` every publishable package, install the tarballs
// with npm (their dependencies from the registry) into a fresh directory outside the workspace,
// and there, on Node 24 and Node 22:
//   - import each package with no optional peer installed (memory users install no drivers);
//   - require() each package from a CommonJS project (Node >= 22.12 loads ESM through require),
//     unless its README says it is ESM-only;
//   - run every ```ts block of every installed README as its own process: it must exit 0 by
//     itself (a left-open handle hangs it; a promise awaited only on unref'd timers makes Node
//     exit 13 "unsettled top-level await"), which the in-workspace README tests cannot see;
//   - type-check those blocks in a strict project with moduleResolution nodenext and bundler;
//   - type-check a file importing every entry (main and subpaths) of every package, skipLibCheck
//     false, under each moduleResolution a user may have: node10 (`"node"`: no `exports` support,
//     so the packages' top-level `types` and `typesVersions` must point at every entry), node16,
//     nodenext and bundler, and nodenext in a CommonJS project.
// It also reads each packed package.json: no workspace: ranges, no @noa/source condition, no
// src/ or test files. Notes (printed, not failures): README imports its Install section does not
// name. A failure: a main entry whose declarations import an optional peer (a strict
// skipLibCheck: false user would have to install it).
//
// Needs the packages built (`scripts/run build`) and, for the README blocks that use them, the
// services (`eval "$(scripts/services env)"`). Node 22 comes from NOA_NODE22, else from
// .tools/node22 (provisioned like `scripts/run compat` when missing). Exit 1 on any failure; the
// scratch directory is kept then, and each failure prints the command that reproduces it.
//   node scripts/check-packed.mjs [--keep]
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root, workspacePackages } from './workspace-packages.mjs';

// A block that never finishes is stopped after PROCESS_TIMEOUT_MS; one that finished but left a
// handle open is told apart by the runner below after LINGER_MS, whatever the machine's load.
const PROCESS_TIMEOUT_MS = 120_000;
const LINGER_MS = 5_000;
const BLOCK_RUNNER = `import path from 'node:path';
import { pathToFileURL } from 'node:url';
await import(pathToFileURL(path.resolve(process.argv[2])).href);
// The block has finished: whatever still holds the process open outlives it (unref'd, this
// timer fires only then).
setTimeout(() => {
  // The runner's own stdout and stderr pipes are listed too, but hold nothing open.
  const open = process.getActiveResourcesInfo().filter((name) => name !== 'PipeWrap' && name !== 'TTYWrap');
  console.error('still open after the block finished: ' + open.join(', '));
  process.exit(99);
}, ${LINGER_MS}).unref();
`;
const keep = process.argv.includes('--keep');
const started = Date.now();
const failures = [];
const notes = [];

const run = (command, args, options = {}) =>
  spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
const fail = (what, detail, reproduce) => {
  failures.push(what);
  console.log(`FAIL ${what}`);
  if (detail) console.log(indent(detail.trim().split('\n').slice(-12).join('\n')));
  if (reproduce) console.log(`     reproduce: ${reproduce}`);
};
const phase = (name) => console.log(`---- ${name} (at ${Math.round((Date.now() - started) / 1000)} s)`);
const indent = (text) => text.replace(/^/gm, '     ');
const must = (result, what) => {
  if (result.status !== 0) {
    console.error(`check-packed: ${what} failed\n${result.stdout}${result.stderr}`);
    process.exit(2);
  }
  return result.stdout;
};

const packages = workspacePackages().filter(({ manifest }) => !manifest.private);
for (const { name, dir } of packages) {
  if (!existsSync(path.join(dir, 'dist'))) {
    console.error(`check-packed: packages/${name}/dist is missing: run \`scripts/run build\` first`);
    process.exit(2);
  }
}

// Versions for what the README blocks import beside @noa: the ones the workspace pins.
const pinned = new Map();
for (const manifest of [
  JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')),
  ...workspacePackages().map((entry) => entry.manifest),
  ...readdirSync(path.join(root, 'examples')).map((app) =>
    JSON.parse(readFileSync(path.join(root, 'examples', app, 'package.json'), 'utf8')),
  ),
]) {
  for (const [dependency, range] of Object.entries({
    ...manifest.devDependencies,
    ...manifest.dependencies,
  })) {
    if (!range.startsWith('workspace:') && !pinned.has(dependency)) pinned.set(dependency, range);
  }
}

const node24 = process.execPath;
const node22 = findNode22();
const nodes = [
  ['node24', node24],
  ['node22', node22],
];
for (const [label, binary] of nodes)
  console.log(`${label}: ${run(binary, ['-v']).stdout.trim()} (${binary})`);

const scratch = mkdtempSync(path.join(os.tmpdir(), 'noa-packed-'));
const tarballs = path.join(scratch, 'tarballs');
mkdirSync(tarballs);
console.log(`scratch: ${scratch}`);

// 1. Pack, and read what was packed.
phase('pack');
for (const { name, dir } of packages) {
  must(run('pnpm', ['pack', '--pack-destination', tarballs], { cwd: dir }), `pnpm pack in packages/${name}`);
}
const packed = [];
for (const file of readdirSync(tarballs).filter((entry) => entry.endsWith('.tgz'))) {
  const listing = must(run('tar', ['-tzf', path.join(tarballs, file)]), `tar -tzf ${file}`).split('\n');
  const stray = listing.filter((entry) => /^package\/(src|test|bench)\//.test(entry));
  if (stray.length > 0) fail(`${file}: ships ${stray.slice(0, 3).join(', ')}`);
  if (!listing.includes('package/LICENSE')) fail(`${file}: ships no LICENSE`);
  // Source maps must not point at files the tarball lacks: they carry their sources inline.
  const maps = listing.filter((entry) => entry.endsWith('.map'));
  for (const map of maps.slice(0, 3)) {
    const text = must(run('tar', ['-xOzf', path.join(tarballs, file), map]), `${file} ${map}`);
    if (!JSON.parse(text).sourcesContent) fail(`${file}: ${map} points at sources it does not carry`);
  }
  const manifestText = must(run('tar', ['-xOzf', path.join(tarballs, file), 'package/package.json']), file);
  const manifest = JSON.parse(manifestText);
  packed.push({ file, name: manifest.name });
  const runtime = {
    ...manifest.dependencies,
    ...manifest.peerDependencies,
    ...manifest.optionalDependencies,
  };
  for (const [dependency, range] of Object.entries(runtime)) {
    if (range.startsWith('workspace:')) fail(`${file}: dependency ${dependency}@${range}`);
  }
  if (JSON.stringify(manifest.exports).includes('@noa/source')) {
    fail(`${file}: its exports still have the @noa/source condition`);
  }
  if (Object.keys(runtime).some((dependency) => dependency === '@noa/testkit')) {
    fail(`${file}: depends on the private @noa/testkit`);
  }
}

// 2. A minimal app: the tarballs only, no optional peer, no extra package.
phase('install the tarballs alone');
const minimal = makeApp('minimal', {});
for (const [label, binary] of nodes) {
  const importAll = packages.map(({ manifest }) => `await import('${manifest.name}');`).join('\n');
  writeFileSync(path.join(minimal, 'import-all.mjs'), `${importAll}\n`);
  const imported = run(binary, ['import-all.mjs'], { cwd: minimal, timeout: PROCESS_TIMEOUT_MS });
  if (imported.status === 0) console.log(`ok   ${label} import every package without optional peers`);
  else
    fail(
      `${label} import without optional peers`,
      imported.stderr,
      `cd ${minimal} && ${binary} import-all.mjs`,
    );

  mkdirSync(path.join(minimal, 'cjs'), { recursive: true });
  writeFileSync(path.join(minimal, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
  for (const { manifest } of packages) {
    const required = run(binary, ['-e', `require('${manifest.name}')`], {
      cwd: path.join(minimal, 'cjs'),
      timeout: PROCESS_TIMEOUT_MS,
    });
    const readme = readFileSync(path.join(minimal, 'node_modules', manifest.name, 'README.md'), 'utf8');
    if (required.status === 0) console.log(`ok   ${label} require('${manifest.name}') from CommonJS`);
    else if (/ESM[- ]only/i.test(readme))
      console.log(`ok   ${label} ${manifest.name} is ESM-only, as its README says`);
    else {
      const message = required.stderr.split('\n').find((line) => /Error|error/.test(line)) ?? required.stderr;
      fail(
        `${label} require('${manifest.name}') from CommonJS`,
        message,
        `cd ${path.join(minimal, 'cjs')} && ${binary} -e "require('${manifest.name}')"`,
      );
    }
  }
}

// 3. The README blocks, in an app with what they import.
// What a reader installs: what the blocks import and what the Install sections name.
const blocks = [];
const installSections = new Map();
for (const { manifest } of packages) {
  const readme = readFileSync(path.join(minimal, 'node_modules', manifest.name, 'README.md'), 'utf8');
  blocks.push(...readmeBlocks(manifest.name, readme));
  installSections.set(manifest.name, /## Install[\s\S]*?(?=\n## )/.exec(readme)?.[0] ?? '');
}
const wanted = new Set(['typescript', '@types/node']);
for (const block of blocks) for (const specifier of block.imports) wanted.add(specifier);
for (const section of installSections.values()) {
  for (const word of section.match(/[@\w][\w./-]*/g) ?? []) if (pinned.has(word)) wanted.add(word);
}
const extras = {};
for (const dependency of wanted) {
  if (dependency.startsWith('@noa/')) continue;
  const range = pinned.get(dependency);
  if (!range) {
    fail(`README blocks import ${dependency}, which no workspace manifest pins`);
    continue;
  }
  extras[dependency] = range;
  const types = `@types/${dependency.replace(/^@([^/]+)\/(.+)$/, '$1__$2')}`;
  if (pinned.has(types)) extras[types] = pinned.get(types);
}
phase('install the tarballs with what the READMEs use');
const app = makeApp('readme', extras);
phase('run the README blocks and type-check them');
mkdirSync(path.join(app, 'blocks'));
for (const block of blocks) writeFileSync(path.join(app, 'blocks', block.file), block.code);
writeFileSync(path.join(app, 'run-block.mjs'), BLOCK_RUNNER);
// The compilers run while the blocks do (the blocks mostly wait on services). One package's
// blocks run one after another, Node 24 then 22 (they share table and key names); different
// packages run side by side.
const typechecks = Promise.all([
  typecheck(app, 'blocks', ['blocks/*.ts'], 'nodenext', true),
  typecheck(app, 'blocks', ['blocks/*.ts'], 'bundler', true),
  typecheck(minimal, 'import-all', [], 'nodenext', false),
]);
const reports = await Promise.all(
  packages.map(async ({ manifest }) => {
    const lines = [];
    for (const [label, binary] of nodes) {
      for (const block of blocks.filter((entry) => entry.package === manifest.name)) {
        lines.push(await runBlock(label, binary, block));
      }
    }
    return lines;
  }),
);
for (const { what, detail, reproduce, ok } of reports.flat()) {
  if (ok) console.log(`ok   ${what}`);
  else fail(what, detail, reproduce);
}
const [nodenext, bundler, libCheck] = await typechecks;
for (const [moduleResolution, checked] of [
  ['nodenext', nodenext],
  ['bundler', bundler],
]) {
  const what = `tsc --strict, moduleResolution ${moduleResolution}: README blocks`;
  if (checked.status === 0) console.log(`ok   ${what}`);
  else fail(what, checked.output, checked.reproduce);
}
phase('type-check every entry under each moduleResolution');
// Every entry a user can import, in the app that has every optional peer (a subpath's
// declarations import its driver).
const entrySpecifiers = packages.flatMap(({ manifest }) =>
  Object.keys(manifest.exports ?? {}).map((key) =>
    key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`,
  ),
);
const entriesSource = `${[
  ...entrySpecifiers.map((specifier, index) => `import * as e${index} from '${specifier}';`),
  `console.log(${entrySpecifiers.map((_, index) => `e${index}`).join(', ')});`,
].join('\n')}\n`;
writeFileSync(path.join(app, 'entries.ts'), entriesSource);
// The same file in a CommonJS project (its imports become require() calls): module nodenext lets
// it require() the ES modules, as Node >= 22.12 does (node16 and node18 do not: TS1479).
const cjsApp = path.join(app, 'cjs');
mkdirSync(cjsApp);
writeFileSync(path.join(cjsApp, 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(path.join(cjsApp, 'entries.ts'), entriesSource);
const entryChecks = [
  ['node10', app, 'moduleResolution node10 (CommonJS output)'],
  ['node16', app, 'moduleResolution node16'],
  ['nodenext', app, 'moduleResolution nodenext'],
  ['bundler', app, 'moduleResolution bundler'],
  ['nodenext', cjsApp, 'moduleResolution nodenext, a CommonJS project'],
];
// One compiler at a time, once the blocks are done: each loads every driver's declarations (about
// 20 s of a core); run beside the blocks, they starved them and the other compilers (a block's
// pool waited past its acquire timeout, the compilers past PROCESS_TIMEOUT_MS).
for (const [moduleResolution, dir, label] of entryChecks) {
  const checked = await typecheck(dir, 'entries', ['entries.ts'], moduleResolution, false, dir === cjsApp);
  const what = `tsc --strict, skipLibCheck: false, ${label}: every entry (${entrySpecifiers.length}) resolves to its types`;
  if (checked.status === 0) console.log(`ok   ${what}`);
  else fail(what, checked.output, checked.reproduce);
}
const missingTypes = [
  ...new Set([...libCheck.output.matchAll(/Cannot find module '([^']+)'/g)].map((m) => m[1])),
];
// Each package's main entry must type-check with no optional peer installed (decision 010: what
// needs a driver's types lives in that driver's subpath entry).
{
  const what = 'tsc --strict, skipLibCheck: false, no optional peer installed: every main entry';
  if (libCheck.status === 0) console.log(`ok   ${what}`);
  else
    fail(
      what,
      missingTypes.length > 0
        ? `the declarations import ${missingTypes.join(', ')}\n${libCheck.output}`
        : libCheck.output,
      libCheck.reproduce,
    );
}
for (const { manifest } of packages) {
  const install = installSections.get(manifest.name);
  const unnamed = new Set();
  for (const block of blocks.filter((entry) => entry.package === manifest.name)) {
    for (const specifier of block.imports) {
      if (specifier !== manifest.name && !install.includes(specifier)) unnamed.add(specifier);
    }
  }
  if (unnamed.size > 0) {
    notes.push(
      `${manifest.name} README examples import ${[...unnamed].join(', ')}, not named in its Install section`,
    );
  }
}

for (const note of notes) console.log(`note ${note}`);
const seconds = Math.round((Date.now() - started) / 1000);
if (failures.length > 0) {
  console.log(`check-packed: ${failures.length} failed in ${seconds} s; scratch kept at ${scratch}`);
  process.exit(1);
}
if (!keep) rmSync(scratch, { recursive: true, force: true });
console.log(`check-packed: all passed in ${seconds} s`);

/** Runs a process to its end, or kills it after `timeoutMs`; stdout and stderr as one text. */
async function runAsync(command, args, options, timeoutMs = PROCESS_TIMEOUT_MS) {
  const child = spawn(command, args, options);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const [status] = await once(child, 'close');
  clearTimeout(timer);
  return { status, output, timedOut };
}

/** Runs one README block as its own process; `ok` when it exits 0 by itself. */
async function runBlock(label, binary, block) {
  const what = `${label} ${block.package} README block ${block.index} (${block.section})`;
  const reproduce = `cd ${app} && ${binary} blocks/${block.file}`;
  const { status, output, timedOut } = await runAsync(
    binary,
    ['run-block.mjs', path.join('blocks', block.file)],
    {
      cwd: app,
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    },
  );
  const detail = timedOut
    ? `not finished after ${PROCESS_TIMEOUT_MS} ms`
    : status === 13
      ? `exit 13: an awaited promise never settled (only unref'd timers were left)`
      : status === 99
        ? `${output.trim().split('\n').at(-1)} (${LINGER_MS} ms later): a handle left open`
        : output;
  return { what, reproduce, detail, ok: !timedOut && status === 0 };
}

/** A fresh npm project in the scratch directory with every tarball and `extras` installed. */
function makeApp(name, extras) {
  const dir = path.join(scratch, name);
  mkdirSync(dir);
  const dependencies = Object.fromEntries(packed.map(({ file, name }) => [name, `file:../tarballs/${file}`]));
  const manifest = {
    name: `noa-packed-${name}`,
    private: true,
    type: 'module',
    dependencies: { ...dependencies, ...extras },
  };
  writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  must(
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir }),
    `npm install in ${dir}`,
  );
  return dir;
}

/** The ```ts blocks of a README with their section and the bare specifiers they import. */
function readmeBlocks(packageName, readme) {
  const found = [];
  let section = '';
  let code;
  for (const line of readme.split('\n')) {
    if (code === undefined && line.startsWith('## ')) section = line.slice(3).trim();
    else if (code === undefined && /^```(ts|typescript)\s*$/.test(line)) code = [];
    else if (code !== undefined && line.startsWith('```')) {
      const index = found.length + 1;
      const text = `${code.join('\n')}\n`;
      const imports = [...text.matchAll(/^import\s[^;]*?from\s+'([^']+)'/gm)]
        .map((match) => match[1])
        .filter((specifier) => !specifier.startsWith('node:') && !specifier.startsWith('.'))
        .map((specifier) =>
          specifier
            .split('/')
            .slice(0, specifier.startsWith('@') ? 2 : 1)
            .join('/'),
        );
      const slug = `${packageName.replace('@noa/', '')}-${String(index).padStart(2, '0')}`;
      found.push({ package: packageName, index, section, code: text, imports, file: `${slug}.ts` });
      code = undefined;
    } else if (code !== undefined) code.push(line);
  }
  return found;
}

/**
 * `tsc --noEmit` over `include` in `dir`, strict, as a user's project would set it: an ESM project,
 * or a CommonJS one (`cjsProject`, and always under node10, whose users emit CommonJS: Node >=
 * 22.12 require()s the packages).
 */
async function typecheck(dir, name, include, moduleResolution, skipLibCheck, cjsProject = false) {
  const moduleFor = { node10: 'commonjs', node16: 'node16', nodenext: 'nodenext', bundler: 'esnext' };
  const commonjs = cjsProject || moduleResolution === 'node10';
  const config = {
    compilerOptions: {
      strict: true,
      noUncheckedIndexedAccess: true,
      // A CommonJS project's `import` statements are rewritten to require(): not verbatim.
      verbatimModuleSyntax: !commonjs,
      noEmit: true,
      target: 'es2022',
      lib: ['es2024', 'esnext.disposable'],
      module: moduleFor[moduleResolution],
      moduleResolution,
      // tsc --init's esModuleInterop: without it, under node10, zod's declarations (and core's
      // default import of node:diagnostics_channel) do not compile.
      ...(commonjs ? { esModuleInterop: true } : {}),
      types: ['node'],
      skipLibCheck,
    },
    include: include.length > 0 ? include : [`${name}.ts`],
  };
  if (include.length === 0) {
    // Node's types from the readme app by path: a typeRoots entry would also lend its @types/pg.
    const nodeTypes = path.join(app, 'node_modules', '@types', 'node', 'index.d.ts');
    const source = [`/// <reference path="${nodeTypes}" />`];
    source.push(...packages.map(({ manifest }, index) => `import * as p${index} from '${manifest.name}';`));
    source.push(`console.log(${packages.map((_, index) => `p${index}`).join(', ')});`);
    writeFileSync(path.join(dir, `${name}.ts`), `${source.join('\n')}\n`);
    config.compilerOptions.types = [];
  }
  const configFile = `tsconfig.${name}.${moduleResolution}.json`;
  writeFileSync(path.join(dir, configFile), `${JSON.stringify(config, null, 2)}\n`);
  const tsc = path.join(app, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await runAsync(node24, [tsc, '-p', configFile], { cwd: dir });
  return {
    status: result.timedOut ? 'timed out' : result.status,
    output: result.timedOut
      ? `tsc did not finish within ${PROCESS_TIMEOUT_MS} ms\n${result.output}`
      : result.output,
    reproduce: `cd ${dir} && ${node24} ${tsc} -p ${configFile}`,
  };
}

/** Node 22: NOA_NODE22, else .tools/node22 (installed there from the npm registry if missing). */
function findNode22() {
  const fromEnv = process.env.NOA_NODE22;
  if (fromEnv) return fromEnv;
  const tools = path.join(root, '.tools', 'node22');
  const binary = path.join(tools, 'node_modules', '.bin', 'node');
  if (!existsSync(binary)) {
    must(
      run('npm', ['install', '--prefix', tools, '--no-save', '--no-audit', '--no-fund', 'node@22']),
      'npm install node@22',
    );
  }
  return binary;
}
