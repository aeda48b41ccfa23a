import { defineConfig } from 'vitest/config';

/**
 * One root config with two projects (Vitest >= 3.2 calls the old `vitest.workspace.ts` file
 * `test.projects`): `unit` runs pure logic with no servers; `integration` talks to the real
 * services started by `scripts/services up`. Workspace packages resolve to their `src/`
 * through the `@noa/source` export condition, so tests need no build step.
 */
export default defineConfig({
  resolve: { conditions: ['@noa/source'] },
  ssr: { resolve: { conditions: ['@noa/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
          exclude: ['**/test/integration/**', '**/node_modules/**'],
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
