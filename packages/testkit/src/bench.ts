import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The side-by-side benchmark harness. Each case measures ours and the anchor in the same
 * process, alternating rounds after a warm-up, and reports the median of each, the ratio
 * ours/theirs and its spread. Output: a table on stdout and `bench/results.json` (the shape
 * in CONVENTIONS.md). With `NOA_BENCH_SMOKE=1` every case runs one tiny round and nothing
 * is written: CI uses that so bench code cannot rot.
 *
 * One process is one sample of whatever the process fixes at start (the heap's layout, when and how
 * code tiers up; a fixed V8 hash seed did not make it repeatable): a row can move by a third
 * between two processes of the same code while its rounds within a process agree to ±5%. A case
 * with `processes: K` is therefore run in K fresh child processes, one after another (the same
 * entry script, node flags and environment, plus `NOA_BENCH_CHILD=<case name>`, which runs that
 * case alone, in process, and hands its row back through a temporary file instead of writing
 * results.json). Each child does the usual warm-up and alternating rounds; the parent's row has
 * ours/theirs as the median of the per-process medians, `ratio` as the median of the per-process
 * ratios, `spread` as the spread of those per-process ratios (so it shows the between-process
 * movement), and `processRatios` (each process's ratio) and `withinProcessSpread` (the median of
 * the children's own spreads) beside them. Smoke runs keep every case in process.
 */

/** True when benchmarks should run at smoke size (CI). */
export const smoke = process.env.NOA_BENCH_SMOKE === '1';

/** Picks the full-size or the smoke-size value of a parameter. */
export function size<T>(full: T, smokeValue: T): T {
  return smoke ? smokeValue : full;
}

/** One comparison row. `ours`/`theirs` each run one sample and return its measured value. */
export interface BenchCase {
  case: string;
  unit: string;
  better: 'higher' | 'lower';
  /** Target for `ratio` (or for `ours` when there is no anchor). */
  goal?: number;
  /** Anchor name and version, e.g. `rate-limiter-flexible@11.4.0`. */
  anchor?: string;
  ours: () => Promise<number> | number;
  theirs?: () => Promise<number> | number;
  /** Rounds after warm-up (default 7; 1 in smoke mode). */
  rounds?: number;
  /** Extra facts shown in the JSON row (e.g. Redis calls per check for both). */
  extra?: () => Promise<Record<string, unknown>> | Record<string, unknown>;
  /**
   * Run the case in this many fresh child processes (its rounds in each) and combine their rows
   * (see the module comment); unset: in this process. Ignored in smoke mode. A child runs the
   * bench entry again, so the entry's setup runs once per child: {@link benchChildCase} lets an
   * entry skip setup that the case does not use. Numeric `extra` fields are the median over the
   * processes, others are the first process's.
   */
  processes?: number;
}

/**
 * In a child process started for one case (`processes`), that case's name; otherwise undefined.
 * Entries use it to skip setup the case does not need (servers for other rows).
 */
export const benchChildCase: string | undefined = process.env.NOA_BENCH_CHILD || undefined;

/** A row of `bench/results.json`. */
export interface BenchRow {
  case: string;
  unit: string;
  ours: number;
  anchor: string | null;
  theirs: number | null;
  ratio: number | null;
  spread: number;
  better: 'higher' | 'lower';
  goal: number | null;
  met: boolean | null;
  [extra: string]: unknown;
}

/** Median of a non-empty list. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Value at quantile `q` (0–1) of a list, nearest rank. */
export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Relative spread: (max − min) / 2 / median of the per-round values. */
export function spreadOf(values: number[]): number {
  const mid = median(values);
  if (mid === 0 || values.length < 2) return 0;
  return (Math.max(...values) - Math.min(...values)) / 2 / Math.abs(mid);
}

/** Runs `fn` `iterations` times (awaiting when it returns a promise) and returns ops/s. */
export async function opsPerSecond(iterations: number, fn: (index: number) => unknown): Promise<number> {
  const started = performance.now();
  for (let index = 0; index < iterations; index += 1) {
    const result = fn(index);
    if (result instanceof Promise) await result;
  }
  return iterations / ((performance.now() - started) / 1_000);
}

/**
 * Like {@link opsPerSecond}, but per second of this process's CPU time (`process.cpuUsage`), not
 * of wall time: for in-process cases (no I/O), where the time the scheduler gives to other
 * processes on a busy machine would otherwise count against whichever side it fell on.
 */
export const opsPerCpuSecond: CpuLoop = ownCpuLoop();

/** The signature of {@link opsPerCpuSecond}, itself one of the loops {@link ownCpuLoop} compiles. */
export type CpuLoop = (iterations: number, fn: (index: number) => unknown) => Promise<number>;

/**
 * A CPU-timed loop compiled on its own, for one side of a case (mitata compiles each benchmark's
 * loop the same way; {@link opsPerCpuSecond} is one such copy, shared). Through a shared copy
 * every case's callee passes one call site, `fn(index)`, which V8 then sees as megamorphic and
 * will not inline into the loop: a deeper callee (a limiter's check) loses more by that than a
 * shallow one (a `Map` bump), though an application's call site sees one callee. Create one per
 * side, once, and call it per sample.
 * Measured on the rate limiter's fixed window (2026-12-06), the three calls alone: ours/
 * express-rate-limit 0.87–0.94 through the shared loop, 0.97–0.99 through own loops (in the full
 * benchmark run, with every other case in the process, the ratio did not move).
 */
export function ownCpuLoop(): CpuLoop {
  const compile = new Function(
    'process',
    `return async function ownCpuLoop(iterations, fn) {
      const started = process.cpuUsage();
      for (let index = 0; index < iterations; index += 1) {
        const result = fn(index);
        if (result instanceof Promise) await result;
      }
      const used = process.cpuUsage(started);
      return iterations / (Math.max(used.user + used.system, 1) / 1_000_000);
    };`,
  ) as (host: typeof process) => CpuLoop;
  return compile(process);
}

/** Runs `total` calls of `fn` with `inFlight` outstanding at once and returns ops/s. */
export async function concurrentOpsPerSecond(
  total: number,
  inFlight: number,
  fn: (index: number) => Promise<unknown>,
): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < total) {
      const index = next;
      next += 1;
      await fn(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, total) }, lane));
  return total / ((performance.now() - started) / 1_000);
}

/** Forces a full garbage collection (the flag is set at run time, so benches need no CLI flag). */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Wall time each side of a case runs untimed before its rounds. */
const warmupMs = Number(process.env.NOA_BENCH_WARMUP_MS ?? 500);

/** Runs `sample` untimed until `warmupMs` have passed (once when a sample takes longer). */
async function warmUp(sample: () => number | Promise<number>): Promise<void> {
  const started = performance.now();
  do await sample();
  while (performance.now() - started < warmupMs);
}

function isMet(row: {
  ratio: number | null;
  ours: number;
  goal: number | null;
  better: string;
}): boolean | null {
  if (row.goal === null) return null;
  const value = row.ratio ?? row.ours;
  return row.better === 'higher' ? value >= row.goal : value <= row.goal;
}

function format(value: number | null): string {
  if (value === null) return '-';
  if (Math.abs(value) >= 1_000) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(3)).toString();
}

/** One case in this process: warm-up, then alternating rounds. */
async function runInProcess(benchCase: BenchCase): Promise<BenchRow> {
  // Start each case from a collected heap: the garbage an earlier case left (100 KB values
  // parsed millions of times) otherwise lands as major GCs inside the next case's rounds.
  collectGarbage();
  const rounds = smoke ? 1 : (benchCase.rounds ?? 7);
  // Warm-up: untimed samples of each side (JIT, connections, caches) until each has run for
  // `warmupMs`, so that neither side is timed while V8 still tiers up its code or grows the
  // young generation (with one sample, the first case of a run measured up to 30% slow).
  if (!smoke) {
    await warmUp(benchCase.ours);
    if (benchCase.theirs) await warmUp(benchCase.theirs);
  }
  const ours: number[] = [];
  const theirs: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    // Alternate which side goes first so drift on a noisy machine hits both equally.
    const first = round % 2 === 0;
    let ourValue: number;
    let theirValue: number | undefined;
    if (first || !benchCase.theirs) {
      ourValue = await benchCase.ours();
      theirValue = await benchCase.theirs?.();
    } else {
      theirValue = await benchCase.theirs();
      ourValue = await benchCase.ours();
    }
    ours.push(ourValue);
    if (theirValue !== undefined) {
      theirs.push(theirValue);
      ratios.push(ourValue / theirValue);
    }
  }
  const oursMedian = median(ours);
  const theirsMedian = theirs.length ? median(theirs) : null;
  const ratio = theirsMedian === null ? null : median(ratios);
  const extra = benchCase.extra ? await benchCase.extra() : undefined;
  const row: BenchRow = {
    case: benchCase.case,
    unit: benchCase.unit,
    ours: oursMedian,
    anchor: benchCase.anchor ?? null,
    theirs: theirsMedian,
    ratio,
    spread: Number(spreadOf(ratios.length ? ratios : ours).toFixed(3)),
    better: benchCase.better,
    goal: benchCase.goal ?? null,
    met: null,
    ...extra,
  };
  row.met = isMet(row);
  return row;
}

/** The fields every row has; the rest are a case's `extra` facts. */
const baseFields = new Set([
  'case',
  'unit',
  'ours',
  'anchor',
  'theirs',
  'ratio',
  'spread',
  'better',
  'goal',
  'met',
]);

/**
 * Combines the rows of one case measured in separate processes: ours/theirs the median of the
 * per-process medians, `ratio` the median of the per-process ratios, `spread` the spread of those
 * ratios (of `ours` without an anchor), `processRatios` (or `processValues` without an anchor)
 * each process's figure, `withinProcessSpread` the median of the processes' own spreads. Numeric
 * extra fields are the median over the processes; other extra fields are the first process's.
 */
export function combineProcessRows(rows: BenchRow[]): BenchRow {
  const first = rows[0];
  if (!first) throw new Error('combineProcessRows: no rows');
  const ratios = rows.map((row) => row.ratio).filter((ratio): ratio is number => ratio !== null);
  const theirs = rows.map((row) => row.theirs).filter((value): value is number => value !== null);
  const perProcess = ratios.length ? ratios : rows.map((row) => row.ours);
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(first)) {
    if (baseFields.has(key)) continue;
    const values = rows.map((row) => row[key]);
    extra[key] = values.every((each) => typeof each === 'number') ? median(values as number[]) : value;
  }
  const row: BenchRow = {
    case: first.case,
    unit: first.unit,
    ours: median(rows.map((each) => each.ours)),
    anchor: first.anchor,
    theirs: theirs.length ? median(theirs) : null,
    ratio: ratios.length ? median(ratios) : null,
    spread: Number(spreadOf(perProcess).toFixed(3)),
    better: first.better,
    goal: first.goal,
    met: null,
    ...extra,
    [ratios.length ? 'processRatios' : 'processValues']: perProcess.map((value) =>
      Number(value.toPrecision(4)),
    ),
    withinProcessSpread: Number(median(rows.map((each) => each.spread)).toFixed(3)),
  };
  row.met = isMet(row);
  return row;
}

/** Runs the entry script again with `NOA_BENCH_CHILD=<name>` and returns the row it measured. */
async function runInChild(name: string): Promise<BenchRow> {
  const directory = mkdtempSync(path.join(tmpdir(), 'noa-bench-'));
  const out = path.join(directory, 'row.json');
  try {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      env: { ...process.env, NOA_BENCH_CHILD: name, NOA_BENCH_CHILD_OUT: out },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0)
      throw new Error(`bench child for "${name}" exited with ${code}:\n${output.slice(-4_000)}`);
    return JSON.parse(readFileSync(out, 'utf8')) as BenchRow;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function printRow(row: BenchRow): void {
  const extra = Object.fromEntries(Object.entries(row).filter(([key]) => !baseFields.has(key)));
  console.log(
    `${row.case.padEnd(56)} ours ${format(row.ours).padStart(12)} ${row.unit.padEnd(6)} ` +
      `${(row.anchor ?? '').padEnd(30)} ${format(row.theirs).padStart(12)}  ratio ${format(row.ratio).padStart(6)} ` +
      `±${(row.spread * 100).toFixed(1)}%  goal ${format(row.goal)} ${row.met === null ? '' : row.met ? 'met' : 'NOT met'}` +
      (Object.keys(extra).length ? `  ${JSON.stringify(extra)}` : ''),
  );
}

/**
 * Runs every case and prints the table; writes `<benchDir>/results.json` unless in smoke mode.
 * Returns the rows. A case with `processes` runs in that many child processes (see the module
 * comment); in such a child (`NOA_BENCH_CHILD`), only the named case runs, in process, and its
 * row goes to the parent instead of results.json.
 */
export async function runBench(
  packageName: string,
  benchDir: string,
  cases: BenchCase[],
): Promise<BenchRow[]> {
  if (benchChildCase !== undefined) return runAsChild(benchChildCase, cases);
  const rows: BenchRow[] = [];
  // NOA_BENCH_ONLY=<regex>: run only the matching cases (for investigating one row; the results
  // file is then not written, so a partial run never replaces a full one).
  const only = process.env.NOA_BENCH_ONLY ? new RegExp(process.env.NOA_BENCH_ONLY) : undefined;
  for (const benchCase of cases) {
    if (only && !only.test(benchCase.case)) continue;
    const processes = benchCase.processes;
    if (processes !== undefined && (!Number.isInteger(processes) || processes < 1))
      throw new Error(
        `bench case "${benchCase.case}": processes must be a positive integer, got ${processes}`,
      );
    let row: BenchRow;
    if (processes === undefined || smoke) row = await runInProcess(benchCase);
    else {
      if (cases.filter((each) => each.case === benchCase.case).length > 1)
        throw new Error(`bench case "${benchCase.case}": a case run in child processes needs a unique name`);
      const childRows: BenchRow[] = [];
      for (let index = 0; index < processes; index += 1) childRows.push(await runInChild(benchCase.case));
      row = combineProcessRows(childRows);
    }
    rows.push(row);
    printRow(row);
  }
  if (!smoke && !only) {
    const report = { package: packageName, node: process.version, date: new Date().toISOString(), rows };
    writeFileSync(path.join(benchDir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  }
  return rows;
}

/** In a child: runs the one named case in this process and writes its row where the parent reads it. */
async function runAsChild(name: string, cases: BenchCase[]): Promise<BenchRow[]> {
  const out = process.env.NOA_BENCH_CHILD_OUT;
  if (!out) throw new Error('NOA_BENCH_CHILD is set without NOA_BENCH_CHILD_OUT');
  const benchCase = cases.find((each) => each.case === name);
  if (!benchCase) throw new Error(`bench child: no case named "${name}"`);
  const row = await runInProcess(benchCase);
  writeFileSync(out, JSON.stringify(row));
  return [row];
}

/** Renders rows as a Markdown table for a package README. */
export function markdownTable(rows: BenchRow[]): string {
  const lines = [
    '| case | ours | anchor | theirs | ratio ours/anchor | spread | goal | met |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.case} | ${format(row.ours)} ${row.unit} | ${row.anchor ?? '-'} | ${format(row.theirs)} | ${format(row.ratio)} | ±${(row.spread * 100).toFixed(1)}% | ${format(row.goal)} | ${row.met === null ? '-' : row.met ? 'yes' : 'no'} |`,
    );
  }
  return lines.join('\n');
}
