import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vitest/config';

// Keep src/kernels/wgsl.gen.ts in step with kernels/*.wgsl however vitest is started.
execFileSync(process.execPath, ['kernels/embed.mjs']);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
