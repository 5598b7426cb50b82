import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vitest/config';

// Keep src/kernels/wgsl.gen.ts in step with kernels/*.wgsl however vitest is started.
execFileSync(process.execPath, ['kernels/embed.mjs']);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    // Generous: on a machine whose Mesa shader cache is cold, the first test to use a large
    // register-tiled kernel pays its LLVM compile (up to tens of seconds per pipeline on lavapipe).
    testTimeout: 600_000,
    hookTimeout: 600_000,
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  },
});
