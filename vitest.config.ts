import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real servers (influxd, the gateway, child processes).
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two shared cores: keep parallelism modest so timing-sensitive waits stay reliable.
    pool: 'forks',
    maxWorkers: 2,
  },
});
