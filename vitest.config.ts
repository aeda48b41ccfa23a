import { defineConfig } from 'vitest/config';

/**
 * One root config with two projects (Vitest >= 3.2 calls the old `vitest.workspace.ts` file
 * `test.projects`): `unit` runs pure logic with no servers; `integration` talks to the real
 * services started by `scripts/services up`. Workspace packages resolve to their `src/`
 * through the `@noa/source` export condition, so tests need no build step.
 *
 * Test files run 2 at a time (`NOA_TEST_WORKERS` overrides; decision 013): most integration
 * files wait on servers, failovers and child processes rather than on a CPU. On 2 cores three
 * workers took the integration suite from 766 s to 273 s, but left stalls past the caches'
 * default 500 ms operation deadline in CI; two keep most of the gain. Files isolate by name on
 * the shared servers and start private servers for anything global (pause, kill, config, stats).
 */
/**
 * Unit files that check only package metadata and declarations (exports maps, which peers the
 * types reach, tsc over a user's file): the same on every Node release. `NOA_TEST_STATIC=skip`
 * leaves them out, as `scripts/run compat` does for its second run on Node 22 (about 45 s of
 * file time there); the main run on Node 24 keeps them.
 */
const staticFiles = [
  'packages/*/test/entry-points.test.ts',
  'packages/*/test/entry-peers.test.ts',
  'packages/*/test/entries.test.ts',
  'packages/rate-limiter/test/express-types.test.ts',
  'packages/*/test/exact-optional-types.test.ts',
];

export default defineConfig({
  resolve: { conditions: ['@noa/source'] },
  ssr: { resolve: { conditions: ['@noa/source'] } },
  test: {
    maxWorkers: Number(process.env.NOA_TEST_WORKERS ?? 2),
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
          exclude: [
            '**/test/integration/**',
            '**/node_modules/**',
            ...(process.env.NOA_TEST_STATIC === 'skip' ? staticFiles : []),
          ],
          // Unit files share one module registry per worker (no isolation): each file re-importing
          // every module took half the project's time (import 58 s of 110 s; 57 s in all without).
          // Unit files leave no global state behind (timers, spies and env are restored in the
          // file); a file that changes a module's state imports fresh modules
          // (vi.resetModules(), connection-pool's driver-missing.test.ts). Integration files
          // stay isolated.
          isolate: false,
          // Not a speed bound: property tests (100+ runs each) take 1-2 s alone but over 5 s (the
          // default) with files overlapping on a loaded 2-core machine. Assertions on time keep
          // their own generous bounds.
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['packages/*/test/integration/**/*.test.ts', 'examples/*/test/integration/**/*.test.ts'],
          exclude: ['**/node_modules/**'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          globalSetup: ['packages/testkit/src/global-setup.ts'],
        },
      },
    ],
  },
});
