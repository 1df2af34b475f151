import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['engine/**/*.test.ts', 'cluster/**/*.test.ts', 'dispatch/**/*.test.ts', 'workers/**/*.test.ts', 'api/**/*.test.ts', 'store/**/*.test.ts', 'fixtures/**/*.test.ts', 'bench/**/*.test.ts', 'web/**/*.test.ts', '*.test.ts'],
    testTimeout: 60_000,
    // an end-to-end server starts a real store and worker pool: a few seconds on a busy 2-core machine
    hookTimeout: 60_000,
    globalSetup: ['./vitest.global-setup.ts'],
    pool: 'forks',
  },
});
