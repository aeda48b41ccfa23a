#!/usr/bin/env node
// Runs every package's `bench` script one package at a time (benchmarks must not share the
// two cores). `--smoke` runs each at tiny sizes without writing results (CI does this).
import { spawnSync } from 'node:child_process';

const smoke = process.argv.includes('--smoke');
const env = { ...process.env, ...(smoke ? { NOA_BENCH_SMOKE: '1' } : {}) };
const result = spawnSync('pnpm', ['-r', '--workspace-concurrency=1', '--if-present', 'run', 'bench'], {
  stdio: 'inherit',
  env,
});
process.exit(result.status ?? 1);
