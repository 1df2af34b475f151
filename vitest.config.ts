import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['engine/**/*.test.ts', 'dispatch/**/*.test.ts', 'workers/**/*.test.ts', 'api/**/*.test.ts', 'store/**/*.test.ts', 'fixtures/**/*.test.ts', 'bench/**/*.test.ts', 'web/**/*.test.ts', '*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
