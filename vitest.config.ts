import { defineConfig } from 'vitest/config';

// Three tiers (README, Tests): unit needs nothing but Node; integration and system need
// PostgreSQL, Redis and RabbitMQ, which test/setup/global.ts finds or starts.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Under CI a JSON report is written too (test-results.json, or TEST_RESULTS_FILE: the run on
    // the Node LTS, .ci/node-lts); .ci/run prints their totals as one summary line.
    reporters: process.env.CI ? ['default', ['json', { outputFile: process.env.TEST_RESULTS_FILE ?? 'test-results.json' }]] : ['default'],
    env: { NODE_ENV: 'test' },
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], globalSetup: ['test/setup/global.ts'] } },
      { extends: true, test: { name: 'system', include: ['test/system/**/*.test.ts'], globalSetup: ['test/setup/global.ts'] } },
    ],
  },
});
