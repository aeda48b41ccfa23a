import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type BenchRow, combineProcessRows, median, spreadOf } from '../src/bench.js';

const entry = path.join(import.meta.dirname, 'fixtures', 'process-bench.ts');
const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

/** Runs the fake entry as `pnpm bench` runs an entry (tsx, source condition) and returns its files. */
function runEntry(env: Record<string, string>): {
  rows: BenchRow[] | undefined;
  pids: string[];
  stdout: string;
} {
  const directory = mkdtempSync(path.join(tmpdir(), 'noa-bench-test-'));
  directories.push(directory);
  const pidsFile = path.join(directory, 'pids.txt');
  const stdout = execFileSync(process.execPath, ['--conditions=@noa/source', '--import', 'tsx', entry], {
    env: {
      ...process.env,
      NOA_BENCH_SMOKE: '',
      NOA_BENCH_ONLY: '',
      NOA_BENCH_CHILD: '',
      NOA_BENCH_WARMUP_MS: '0',
      FAKE_BENCH_DIR: directory,
      FAKE_BENCH_PIDS: pidsFile,
      ...env,
    },
    encoding: 'utf8',
  });
  const results = path.join(directory, 'results.json');
  const rows = existsSync(results)
    ? (JSON.parse(readFileSync(results, 'utf8')) as { rows: BenchRow[] }).rows
    : undefined;
  const pids = existsSync(pidsFile) ? readFileSync(pidsFile, 'utf8').trim().split('\n') : [];
  return { rows, pids, stdout };
}

function row(
  ours: number,
  theirs: number | null,
  spread: number,
  extra: Record<string, unknown> = {},
): BenchRow {
  return {
    case: 'c',
    unit: 'ops/s',
    ours,
    anchor: theirs === null ? null : 'a@1',
    theirs,
    ratio: theirs === null ? null : ours / theirs,
    spread,
    better: 'higher',
    goal: theirs === null ? null : 1,
    met: null,
    ...extra,
  };
}

describe('combineProcessRows', () => {
  it('takes the medians of the per-process figures and the spread of the per-process ratios', () => {
    const combined = combineProcessRows([
      row(66, 100, 0.05, { bytes: 10, note: 'first' }),
      row(106, 100, 0.04, { bytes: 30, note: 'second' }),
      row(90, 100, 0.06, { bytes: 20, note: 'third' }),
    ]);
    expect(combined.ours).toBe(90);
    expect(combined.theirs).toBe(100);
    expect(combined.ratio).toBeCloseTo(0.9);
    expect(combined.processRatios).toEqual([0.66, 1.06, 0.9]);
    // (1.06 − 0.66) / 2 / 0.9
    expect(combined.spread).toBeCloseTo(0.222, 3);
    expect(combined.withinProcessSpread).toBe(0.05);
    expect(combined.bytes).toBe(20);
    expect(combined.note).toBe('first');
    expect(combined.met).toBe(false);
  });

  it('without an anchor, spreads and lists the per-process values of ours', () => {
    const combined = combineProcessRows([row(10, null, 0), row(14, null, 0), row(12, null, 0)]);
    expect(combined.ratio).toBeNull();
    expect(combined.theirs).toBeNull();
    expect(combined.ours).toBe(12);
    expect(combined.processValues).toEqual([10, 14, 12]);
    // (14 − 10) / 2 / 12
    expect(combined.spread).toBeCloseTo(0.167, 3);
  });
});

describe('runBench with processes', () => {
  it('runs the case in that many child processes and reports their median ratio and spread', () => {
    const { rows, pids } = runEntry({});
    expect(rows?.map((each) => each.case)).toEqual(['across processes', 'in this process']);
    const [across, inProcess] = rows!;
    // Three children, each a process of its own (not the parent, which ran the second case).
    expect(pids).toHaveLength(3);
    const childPids = pids.map((line) => Number(line.split(' ')[0]));
    expect(new Set(childPids).size).toBe(3);
    expect(pids.every((line) => line.endsWith(' across processes'))).toBe(true);
    expect(childPids).not.toContain(inProcess!.pid);
    const ratios = childPids.map((pid) => (100 + (pid % 10)) / 100);
    expect(across!.processRatios).toEqual(ratios);
    expect(across!.ratio).toBeCloseTo(median(ratios));
    expect(across!.spread).toBeCloseTo(spreadOf(ratios), 3);
    expect(across!.ours).toBe(median(childPids.map((pid) => 100 + (pid % 10))));
    expect(across!.perProcess).toBe(median(childPids.map((pid) => pid % 10)));
    expect(across!.label).toBe(`pid ${childPids[0]}`);
    expect(across!.met).toBe(true);
    expect(inProcess!.processRatios).toBeUndefined();
    expect(inProcess!.ratio).toBe(2);
  }, 60_000);

  it('in smoke mode runs every case in process and writes no results', () => {
    const { rows, pids, stdout } = runEntry({ NOA_BENCH_SMOKE: '1' });
    expect(rows).toBeUndefined();
    expect(pids).toEqual([]);
    expect(stdout).toContain('across processes');
    expect(stdout).not.toContain('processRatios');
  }, 60_000);
});
