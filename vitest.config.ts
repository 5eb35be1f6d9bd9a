import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Slow, large-data tests opt in with TEST_LARGE=1 (CI sets it); see README.
    env: { NODE_ENV: 'test' },
  },
});
