import { defineConfig } from 'vitest/config';

// Two projects: `unit` needs no running services (model kernels, pure functions, bundling);
// `stack` runs against the real PostgreSQL and Temporal dev server started once by the global setup.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    maxWorkers: 2,
    projects: [
      // test/helpers/tmp-guard.ts gives the run a temporary folder of its own and fails it if anything is left there.
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/model/**/*.test.ts'], globalSetup: ['test/helpers/tmp-guard.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'stack',
          include: ['test/stack/**/*.test.ts'],
          globalSetup: ['test/helpers/tmp-guard.ts', 'test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
