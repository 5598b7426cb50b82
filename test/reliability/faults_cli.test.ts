/**
 * Device loss through the training CLI, in child processes (node + tsx):
 *  - a run is trained in-process to its first checkpoint (step 3 of the tiny configuration);
 *  - `train --resume <out> --max-steps 7` with the Dawn device destroyed in the middle of step 5
 *    (test/reliability/cli_fault.mts wraps src/cli/train.ts's main and destroys the device at a
 *    dispatch number measured in-process) exits 1 with one `train: TrainDeviceLostError: ...` line
 *    on stderr naming the step, the intact checkpoint and the `--resume` to run, no stack trace; the
 *    checkpoint is byte for byte the step-3 one;
 *  - the same for an injected loss (Gpu.injectFault);
 *  - the real CLI (`tsx src/cli/train.ts --resume <out> --max-steps 7`) then exits 0 and its final
 *    checkpoint equals the same resume done in-process without a fault, bit for bit.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { readCheckpoint, type Checkpoint } from '../../src/train/checkpoint.js';
import { CHECKPOINT_FILE, train } from '../../src/train/loop.js';
import { closeTestGpus, testDir, testGpu } from '../helpers.js';
import { sink, tempDir } from '../train/util.js';
import { expectSameCheckpoint, faultConfig, stepLosses, TOTAL } from './faults_util.js';

const root = join(testDir, '..');
const loader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', loader, ...args],
      { cwd: root, timeout: 120_000, env: { ...process.env, ...env } },
      (e, stdout, stderr) => {
        const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
        resolve({ code, out: stdout, err: stderr, seconds: (performance.now() - t0) / 1000 });
      },
    );
  });
}

let gpu: Gpu;
let dir: string;
let expected: Checkpoint;
let expectedLosses: number[];
let ck3: Buffer;
/** Dispatch calls of a resume from step 3 up to the middle of step 5. */
let midStep5 = 0;
beforeAll(async () => {
  gpu = await testGpu();
  // The run to resume: trained in-process to its first checkpoint.
  dir = tempDir('cli-fault');
  await train(faultConfig(dir, { maxSteps: 3 }), { gpu, out: sink() });
  ck3 = readFileSync(join(dir, CHECKPOINT_FILE));
  // The same resume in-process without a fault (into another folder): the expected end state, and
  // the number of dispatch calls up to the middle of step 5.
  const ck = readCheckpoint(join(dir, CHECKPOINT_FILE));
  const scratch = tempDir('cli-fault-expected');
  const dispatch = gpu.dispatch.bind(gpu);
  let calls = 0;
  const marks: number[] = [];
  gpu.dispatch = (...a: Parameters<Gpu['dispatch']>) => {
    calls++;
    dispatch(...a);
  };
  try {
    await train(
      { ...ck.meta.config, maxSteps: TOTAL, out: scratch },
      { gpu, out: sink(), resume: ck, hooks: { afterStep: () => void marks.push(calls) } },
    );
  } finally {
    gpu.dispatch = dispatch;
  }
  midStep5 = Math.floor((marks[0]! + marks[1]!) / 2); // marks: after steps 4, 5, 6, 7
  expected = readCheckpoint(join(scratch, CHECKPOINT_FILE));
  expectedLosses = stepLosses(scratch);
}, 90_000);
afterAll(closeTestGpus);

test('device lost in step 5 under the CLI (destroyed, then injected): exit 1 and a clear message; the CLI then resumes', async () => {
  const ckPath = join(dir, CHECKPOINT_FILE);
  const args = ['--resume', dir, '--max-steps', String(TOTAL), '--quiet'];
  const seconds: string[] = [];
  for (const [mode, reason] of [
    ['destroy', 'destroyed'],
    ['inject', 'injected'],
  ] as const) {
    const r = await run(['test/reliability/cli_fault.mts', ...args], {
      SAMLST_TEST_FAULT: `${mode}:${midStep5}`,
    });
    seconds.push(`${mode} ${r.seconds.toFixed(1)} s`);
    expect(r.code, r.out + r.err).toBe(1);
    const lines = r.err.split('\n').filter((l) => l.startsWith('train: '));
    expect(lines, r.err).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^train: TrainDeviceLostError: WebGPU device lost \\(reason: ${reason}\\)`),
    );
    expect(lines[0]).toContain(
      'at step 5 of 7 (epoch 2, batch 2 of 3): training stopped. Nothing was written from the lost device; ' +
        `the last checkpoint, ${ckPath} (step 3), is intact: continue with --resume ${dir} ` +
        '(steps 4-5 are computed again)',
    );
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    expect(readFileSync(ckPath).equals(ck3)).toBe(true);
    expect(readCheckpoint(ckPath).meta.state.step).toBe(3);
  }
  // The real CLI continues the run; the result equals the same resume without a fault.
  const r = await run(['src/cli/train.ts', ...args]);
  seconds.push(`resume ${r.seconds.toFixed(1)} s`);
  expect(r.code, r.out + r.err).toBe(0);
  expectSameCheckpoint(expected, readCheckpoint(ckPath));
  expect(stepLosses(dir)).toEqual(expectedLosses);
  console.log(
    `[faults_cli] 2 device faults through the CLI (dispatch ${midStep5}); child runs: ${seconds.join(', ')}`,
  );
}, 240_000);
