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
//   - follow each README's Install section verbatim in a fresh project of its own (its `npm install`
//     lines as written, the tarballs for @noa/*, plus typescript and @types/node): its quick-start
//     blocks must import only what those lines install (not a dependency of a dependency that npm
//     happens to hoist), type-check strict with skipLibCheck false under nodenext and bundler (a
//     missing @types package fails here), and run there on Node 24;
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
//
// Independent steps run side by side, at most --jobs=N (default 2, the CI machine's cores) CPU-bound
// processes at a time: the packs, the two npm installs (offline-first, from npm's cache), the
// import/require probes. The README blocks run beside the compilers (they mostly wait on
// services); the compilers run at a lower CPU priority so the blocks are not starved. The eight
// type-checks run as `tsc -b` over their projects, split in N groups: one compiler process per
// group, which parses each declaration file (Node's types, the drivers') once for all its projects.
// Each check's result is printed whole, in a fixed order, whatever order they finish in.
//   node scripts/check-packed.mjs [--keep] [--jobs=N]
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
import { tarballContentProblems } from './check-packed-content.mjs';
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
const jobsArgument = process.argv.find((argument) => argument.startsWith('--jobs='));
const JOBS = Math.max(1, Number(jobsArgument?.slice('--jobs='.length) ?? 2) || 1);
const COMPILER_NICENESS = 5;
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

// 1. Pack (side by side), and read what was packed.
phase('pack');
const cpu = limiter(JOBS);
await Promise.all(
  packages.map(({ name, dir }) =>
    cpu(async () =>
      mustAsync(
        await runAsync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: dir }),
        `pnpm pack in packages/${name}`,
      ),
    ),
  ),
);
const packed = [];
const readmes = new Map();
for (const file of readdirSync(tarballs).filter((entry) => entry.endsWith('.tgz'))) {
  const listing = must(run('tar', ['-tzf', path.join(tarballs, file)]), `tar -tzf ${file}`).split('\n');
  // Unpacked once, so that every source map can be read.
  const unpacked = path.join(scratch, 'unpacked', file);
  mkdirSync(unpacked, { recursive: true });
  must(run('tar', ['-xzf', path.join(tarballs, file), '-C', unpacked]), `tar -xzf ${file}`);
  for (const problem of tarballContentProblems(listing, (entry) =>
    readFileSync(path.join(unpacked, entry), 'utf8'),
  )) {
    fail(`${file}: ${problem}`);
  }
  const manifestText = must(run('tar', ['-xOzf', path.join(tarballs, file), 'package/package.json']), file);
  const manifest = JSON.parse(manifestText);
  packed.push({ file, name: manifest.name });
  // The README as installed: the one in the tarball, followed by the guides it links to
  // (`docs/*.md`, shipped beside it), whose blocks are run and type-checked the same way.
  const guides = listing.filter((entry) => /^package\/docs\/[^/]+\.md$/.test(entry)).sort();
  readmes.set(
    manifest.name,
    ['package/README.md', ...guides]
      .map((entry) => readFileSync(path.join(unpacked, entry), 'utf8'))
      .join('\n'),
  );
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

// What a reader installs for the README blocks: what the blocks import and what the Install
// sections name.
const blocks = [];
const installSections = new Map();
for (const { manifest } of packages) {
  const readme = readmes.get(manifest.name) ?? '';
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

// 2. Two apps, installed side by side: the tarballs alone (no optional peer, no extra package),
// and the tarballs with what the READMEs use.
phase('install the tarballs alone, and with what the READMEs use');
const minimal = path.join(scratch, 'minimal');
const app = path.join(scratch, 'readme');
const minimalInstalled = cpu(() => makeApp(minimal, {}));
const appInstalled = cpu(() => makeApp(app, extras));
// One fresh project per package, its Install section followed verbatim (see makeVerbatimApp).
const verbatim = new Map(
  packages.map(({ manifest }) => {
    const quickStart = quickStartBlocks(blocks.filter((block) => block.package === manifest.name));
    const dir = path.join(scratch, `verbatim-${manifest.name.replace('@noa/', '')}`);
    const entry = { dir, quickStart, installed: undefined };
    entry.installed = cpu(() => makeVerbatimApp(dir, manifest.name, quickStart));
    return [manifest.name, entry];
  }),
);

// 3. In the minimal app, on each Node: import every package, require() each from CommonJS. One
// process per probe, side by side (they only read the install).
const probes = minimalInstalled.then(() => {
  mkdirSync(path.join(minimal, 'cjs'), { recursive: true });
  writeFileSync(path.join(minimal, 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
  const importAll = packages.map(({ manifest }) => `await import('${manifest.name}');`).join('\n');
  writeFileSync(path.join(minimal, 'import-all.mjs'), `${importAll}\n`);
  return nodes.flatMap(([label, binary]) => [
    cpu(async () => {
      const imported = await runAsync(binary, ['import-all.mjs'], { cwd: minimal });
      return imported.status === 0 && !imported.timedOut
        ? { ok: true, what: `${label} import every package without optional peers` }
        : {
            what: `${label} import without optional peers`,
            detail: imported.timedOut ? `not finished after ${PROCESS_TIMEOUT_MS} ms` : imported.stderr,
            reproduce: `cd ${minimal} && ${binary} import-all.mjs`,
          };
    }),
    ...packages.map(({ manifest }) =>
      cpu(async () => {
        const required = await runAsync(binary, ['-e', `require('${manifest.name}')`], {
          cwd: path.join(minimal, 'cjs'),
        });
        const readme = readFileSync(path.join(minimal, 'node_modules', manifest.name, 'README.md'), 'utf8');
        if (required.status === 0 && !required.timedOut)
          return { ok: true, what: `${label} require('${manifest.name}') from CommonJS` };
        if (!required.timedOut && /ESM[- ]only/i.test(readme))
          return { ok: true, what: `${label} ${manifest.name} is ESM-only, as its README says` };
        const message = required.timedOut
          ? `not finished after ${PROCESS_TIMEOUT_MS} ms`
          : (required.stderr.split('\n').find((line) => /Error|error/.test(line)) ?? required.stderr);
        return {
          what: `${label} require('${manifest.name}') from CommonJS`,
          detail: message,
          reproduce: `cd ${path.join(minimal, 'cjs')} && ${binary} -e "require('${manifest.name}')"`,
        };
      }),
    ),
  ]);
});

// 4. The type-checks, as projects of the readme app (the compiler is its typescript).
await appInstalled;
mkdirSync(path.join(app, 'blocks'));
for (const block of blocks) writeFileSync(path.join(app, 'blocks', block.file), block.code);
writeFileSync(path.join(app, 'run-block.mjs'), BLOCK_RUNNER);
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
const entries = (label) =>
  `tsc --strict, skipLibCheck: false, ${label}: every entry (${entrySpecifiers.length}) resolves to its types`;
// Heaviest first (each entries project loads every driver's declarations), so that the groups
// below get about the same work.
const projects = [
  tsProject(
    app,
    'entries',
    ['entries.ts'],
    'node10',
    false,
    false,
    entries('moduleResolution node10 (CommonJS output)'),
  ),
  tsProject(app, 'entries', ['entries.ts'], 'node16', false, false, entries('moduleResolution node16')),
  tsProject(app, 'entries', ['entries.ts'], 'nodenext', false, false, entries('moduleResolution nodenext')),
  tsProject(app, 'entries', ['entries.ts'], 'bundler', false, false, entries('moduleResolution bundler')),
  tsProject(
    cjsApp,
    'entries',
    ['entries.ts'],
    'nodenext',
    false,
    true,
    entries('moduleResolution nodenext, a CommonJS project'),
  ),
  tsProject(
    app,
    'blocks',
    ['blocks/*.ts'],
    'nodenext',
    true,
    false,
    'tsc --strict, moduleResolution nodenext: README blocks',
  ),
  tsProject(
    app,
    'blocks',
    ['blocks/*.ts'],
    'bundler',
    true,
    false,
    'tsc --strict, moduleResolution bundler: README blocks',
  ),
];
await minimalInstalled;
// Each package's main entry must type-check with no optional peer installed (decision 010: what
// needs a driver's types lives in that driver's subpath entry).
const libCheck = tsProject(
  minimal,
  'import-all',
  [],
  'nodenext',
  false,
  false,
  'tsc --strict, skipLibCheck: false, no optional peer installed: every main entry',
);
projects.push(libCheck);
for (const [name, entry] of verbatim) {
  const setup = await entry.installed;
  for (const line of setup.problems) fail(`${name} Install section, followed verbatim: ${line}`);
  if (entry.quickStart.length === 0) continue;
  mkdirSync(path.join(entry.dir, 'blocks'), { recursive: true });
  for (const block of entry.quickStart) writeFileSync(path.join(entry.dir, 'blocks', block.file), block.code);
  writeFileSync(path.join(entry.dir, 'run-block.mjs'), BLOCK_RUNNER);
  for (const moduleResolution of ['nodenext', 'bundler']) {
    projects.push(
      tsProject(
        entry.dir,
        'quick-start',
        ['blocks/*.ts'],
        moduleResolution,
        false,
        false,
        `tsc --strict, skipLibCheck: false, moduleResolution ${moduleResolution}: ${name} quick start with only what its Install section installs`,
      ),
    );
  }
}
const groups = Array.from({ length: Math.min(JOBS, projects.length) }, () => []);
for (const [index, project] of projects.entries()) groups[index % groups.length].push(project);
// The compilers run while the blocks do, at a lower CPU priority: the blocks mostly wait on
// services, but a block starved of CPU could wait past its pool's acquire timeout. Niceness 5 gives
// a block about three times a compiler's share of a busy core; with 10 (a tenth), on a machine
// shared with other work (load 14-17), the compilers finished 60-146 s after the blocks.
const checked = Promise.all(groups.map((group, index) => buildProjects(group, index))).then(() =>
  console.log(`---- type-checks done (at ${Math.round((Date.now() - started) / 1000)} s)`),
);

// 5. The README blocks. One package's blocks run one after another, Node 24 then 22 (they share
// table and key names); different packages run side by side.
phase('run the README blocks; type-check them and every entry under each moduleResolution');
const reports = Promise.all(
  packages.map(async ({ manifest }) => {
    const lines = [];
    for (const [label, binary] of nodes) {
      for (const block of blocks.filter((entry) => entry.package === manifest.name)) {
        lines.push(await runBlock(label, binary, block));
      }
    }
    const { dir, quickStart } = verbatim.get(manifest.name);
    for (const block of quickStart) {
      lines.push(await runBlock('node24 (Install section verbatim)', node24, block, dir));
    }
    return lines;
  }),
).then((lines) => {
  console.log(`---- README blocks done (at ${Math.round((Date.now() - started) / 1000)} s)`);
  return lines;
});

for (const probe of await probes) report(await probe);
for (const line of (await reports).flat()) report(line);
await checked;
for (const project of projects) {
  if (project.result.ok) {
    console.log(`ok   ${project.what}`);
    continue;
  }
  let detail = project.result.detail;
  const missingTypes = [...new Set([...detail.matchAll(/Cannot find module '([^']+)'/g)].map((m) => m[1]))];
  if (project === libCheck && missingTypes.length > 0) {
    detail = `the declarations import ${missingTypes.join(', ')}\n${detail}`;
  }
  fail(project.what, detail, project.reproduce);
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

/**
 * Runs a process to its end, or kills it after `timeoutMs`: its stdout, its stderr, and both as
 * one text (`output`). `priority` is a niceness for it (0 is the parent's, 19 the lowest).
 */
async function runAsync(command, args, options, { timeoutMs = PROCESS_TIMEOUT_MS, priority = 0 } = {}) {
  const child = spawn(command, args, options);
  if (priority !== 0 && child.pid !== undefined) {
    try {
      os.setPriority(child.pid, priority);
    } catch {
      // not allowed here: it runs at the parent's priority
    }
  }
  let output = '';
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    output += chunk;
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    output += chunk;
    stderr += chunk;
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const [status, signal] = await once(child, 'close');
  clearTimeout(timer);
  return { status: status ?? signal, output, stdout, stderr, timedOut };
}

/** `must` for {@link runAsync}'s result. */
function mustAsync(result, what) {
  if (result.status !== 0 || result.timedOut) {
    console.error(`check-packed: ${what} failed${result.timedOut ? ' (timed out)' : ''}\n${result.output}`);
    process.exit(2);
  }
  return result.stdout;
}

/** A function that runs the async functions given to it, at most `concurrency` at a time. */
function limiter(concurrency) {
  let running = 0;
  const queue = [];
  const next = () => {
    if (running >= concurrency || queue.length === 0) return;
    running += 1;
    const { task, resolve, reject } = queue.shift();
    task()
      .then(resolve, reject)
      .finally(() => {
        running -= 1;
        next();
      });
  };
  return (task) =>
    new Promise((resolve, reject) => {
      queue.push({ task, resolve, reject });
      next();
    });
}

/** Prints a check's outcome: `ok`, or FAIL with its output and how to reproduce it. */
function report({ ok, what, detail, reproduce }) {
  if (ok) console.log(`ok   ${what}`);
  else fail(what, detail, reproduce);
}

/** Runs one README block as its own process; `ok` when it exits 0 by itself. */
async function runBlock(label, binary, block, cwd = app) {
  const what = `${label} ${block.package} README block ${block.index} (${block.section})`;
  const reproduce = `cd ${cwd} && ${binary} blocks/${block.file}`;
  const { status, output, timedOut } = await runAsync(
    binary,
    ['run-block.mjs', path.join('blocks', block.file)],
    {
      cwd,
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

/** Writes `manifest` as `dir`'s package.json and runs `npm install` there (offline first). */
async function installManifest(dir, manifest) {
  writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  mustAsync(
    await runAsync(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
      { cwd: dir },
      { timeoutMs: 10 * PROCESS_TIMEOUT_MS },
    ),
    `npm install in ${dir}`,
  );
}

/**
 * A fresh npm project at `dir` with every tarball and `extras` installed. npm takes what its cache
 * already has without asking the registry again (--prefer-offline); a clean machine fetches it.
 */
async function makeApp(dir, extras) {
  mkdirSync(dir);
  const dependencies = Object.fromEntries(packed.map(({ file, name }) => [name, `file:../tarballs/${file}`]));
  const manifest = {
    name: `noa-packed-${path.basename(dir)}`,
    private: true,
    type: 'module',
    dependencies: { ...dependencies, ...extras },
  };
  await installManifest(dir, manifest);
}

/** A README's quick start: the blocks of its "Quick start…" sections, else its first block. */
function quickStartBlocks(packageBlocks) {
  const quick = packageBlocks.filter((block) => /^Quick start/i.test(block.section));
  return quick.length > 0 ? quick : packageBlocks.slice(0, 1);
}

/**
 * The packages an Install section's `npm install` lines install, as written: `npm install a b`,
 * `npm i -D c` (a `# comment` ends the command). Names only (a `name@range` loses its range).
 */
function installCommandPackages(section) {
  const names = [];
  for (const [, code] of section.matchAll(/```(?:sh|bash|shell|console)\n([\s\S]*?)```/g)) {
    for (const rawLine of code.split('\n')) {
      const command = /^\s*(?:\$\s*)?npm\s+(?:install|i|add)\s+([^#]*)/.exec(rawLine);
      if (!command) continue;
      for (const word of command[1].trim().split(/\s+/)) {
        if (word === '' || word.startsWith('-')) continue;
        names.push(word.replace(/^(@?[^@]+)@.*$/, '$1'));
      }
    }
  }
  return names;
}

/**
 * A fresh npm project at `dir` for the package `name`, its README's Install section followed as a
 * new user does: what its `npm install` lines install (the @noa packages from the tarballs, the
 * others at the workspace's pinned versions), and typescript and @types/node (any TypeScript
 * project has them). A quick-start block's import that the lines do not install but a comment
 * offers instead (`# or: npm install fastify`) is installed too, as a user taking that path would. The
 * other @noa packages come from the tarballs through `overrides`, as the registry would give them.
 * Returns `problems`: a quick-start import the section does not install at all (it resolves only
 * when npm hoists it as a dependency of a dependency), or a package no workspace manifest pins.
 */
async function makeVerbatimApp(dir, name, quickStart) {
  const section = installSections.get(name) ?? '';
  const problems = [];
  const installed = new Set(installCommandPackages(section));
  // What a comment offers instead (`# or: npm install fastify`, `# or mysql2, ioredis`): the words
  // after its "or". A comment that names a package otherwise ("zod comes with it") installs nothing.
  const alternatives = new Set(
    [...section.matchAll(/```(?:sh|bash|shell|console)\n([\s\S]*?)```/g)].flatMap(([, code]) =>
      code.split('\n').flatMap((line) => /#.*?\bor\b:?(.*)$/.exec(line)?.[1].match(/[@\w][\w./-]*/g) ?? []),
    ),
  );
  if (installed.size === 0) problems.push('it has no `npm install` command');
  for (const block of quickStart) {
    for (const specifier of block.imports) {
      if (installed.has(specifier)) continue;
      if (alternatives.has(specifier)) {
        installed.add(specifier);
      } else {
        problems.push(
          `quick-start block ${block.index} (${block.section}) imports ${specifier}: its npm install lines do not install it (at best npm hoists it as a dependency of a dependency)`,
        );
      }
    }
  }
  const tarballOf = new Map(
    packed.map(({ file, name: packageName }) => [packageName, `file:../tarballs/${file}`]),
  );
  const dependencies = {};
  for (const dependency of [...installed, 'typescript', '@types/node']) {
    const range = tarballOf.get(dependency) ?? pinned.get(dependency);
    if (range === undefined) problems.push(`it installs ${dependency}, which no workspace manifest pins`);
    else dependencies[dependency] = range;
  }
  mkdirSync(dir);
  const manifest = {
    name: `noa-packed-${path.basename(dir)}`,
    private: true,
    type: 'module',
    dependencies,
    overrides: Object.fromEntries(tarballOf),
  };
  await installManifest(dir, manifest);
  return { problems };
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
 * A tsconfig for `tsc --noEmit` over `include` in `dir`, strict, as a user's project would set it:
 * an ESM project, or a CommonJS one (`cjsProject`, and always under node10, whose users emit
 * CommonJS: Node >= 22.12 require()s the packages). `what` names the check; `reproduce` is the
 * command that checks this project alone.
 */
function tsProject(dir, name, include, moduleResolution, skipLibCheck, cjsProject, what) {
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
  return {
    what,
    configPath: path.join(dir, configFile),
    reproduce: `cd ${dir} && ${node24} ${tsc()} -p ${configFile}`,
    result: undefined,
  };
}

/** The readme app's compiler. */
function tsc() {
  return path.join(app, 'node_modules', 'typescript', 'bin', 'tsc');
}

/**
 * Type-checks `projects` with one `tsc -b` (one process: each declaration file is parsed once
 * for all of them) and sets each one's `result`: `ok`, or the diagnostics of that project.
 */
async function buildProjects(projects, index) {
  if (projects.length === 0) return;
  const solution = path.join(scratch, `tsconfig.check-${index}.json`);
  const solutionConfig = { files: [], references: projects.map(({ configPath }) => ({ path: configPath })) };
  writeFileSync(solution, `${JSON.stringify(solutionConfig, null, 2)}\n`);
  const timeoutMs = PROCESS_TIMEOUT_MS * projects.length;
  const result = await runAsync(
    node24,
    [tsc(), '-b', solution, '--verbose', '--pretty', 'false'],
    { cwd: scratch },
    { timeoutMs, priority: COMPILER_NICENESS },
  );
  // --verbose announces each project before its diagnostics: "<time> - Building project '<path>'...".
  const diagnostics = new Map(projects.map(({ configPath }) => [configPath, []]));
  const built = new Set();
  let current;
  for (const line of result.output.split('\n')) {
    const building = /^.* - Building project '(.+)'\.\.\.$/.exec(line);
    if (building) {
      current = building[1];
      built.add(current);
    } else if (/^\S.* - /.test(line) && /^[\d[]/.test(line) && !/: error TS\d+/.test(line)) {
      // another line of the build's own progress ("<time> - Project '…' is out of date …")
    } else if (current !== undefined && line.trim() !== '') diagnostics.get(current)?.push(line);
  }
  for (const project of projects) {
    const lines = diagnostics.get(project.configPath) ?? [];
    if (result.timedOut) {
      project.result = {
        ok: false,
        detail: `tsc -b (${projects.length} projects) did not finish within ${timeoutMs} ms\n${lines.join('\n')}`,
      };
    } else if (!built.has(project.configPath)) {
      project.result = {
        ok: false,
        detail: `tsc -b did not build this project (exit ${result.status})\n${result.output}`,
      };
    } else if (lines.length > 0) {
      project.result = { ok: false, detail: lines.join('\n') };
    } else project.result = { ok: true };
  }
  if (!result.timedOut && result.status !== 0 && projects.every((project) => project.result.ok)) {
    // An error no project owns (tsc itself): every project of the group fails with it.
    for (const project of projects)
      project.result = { ok: false, detail: `tsc -b exit ${result.status}\n${result.output}` };
  }
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
