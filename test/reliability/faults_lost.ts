/**
 * The device-loss suite shared by faults_device.test.ts (real device.destroy()) and
 * faults_injected.test.ts (Gpu.injectFault): each case runs the tiny configuration (7 steps,
 * checkpoints at the ends of epochs 1 and 2 = steps 3 and 6) with a hook that loses the device, and
 * checks that
 *  - the run stops with a TrainDeviceLostError (a DeviceLostError) whose message gives the reason,
 *    names the step (or the save), says nothing was written from the lost device, names the last
 *    checkpoint and the `--resume <out>` that continues it, and which steps are computed again;
 *  - the checkpoint on disk is byte for byte the one written after step 3, verifies, and holds the
 *    tensors of a clean run at step 3; no temporary file and no state_dict are left;
 *  - `--resume` on another device runs to step 7 and ends bit-identical to a run straight through
 *    (parameters, BatchNorm buffers, AdamW moments and step counts, loop state, per-step losses).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Gpu } from '../../src/gpu/device.js';
import { DeviceLostError } from '../../src/gpu/errors.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { CHECKPOINT_FILE, train, TrainDeviceLostError, type TrainHooks } from '../../src/train/loop.js';
import { closeTestGpus, testGpu } from '../helpers.js';
import { sink, tempDir } from '../train/util.js';
import {
  expectSameCheckpoint,
  faultConfig,
  parseCheckpointBytes,
  referenceRun,
  stepLosses,
  temporaries,
  TOTAL,
  type Reference,
} from './faults_util.js';

export interface LostCase {
  name: string;
  /** Label in the figures. */
  kind: string;
  /** A real device.destroy(): the run gets a device of its own (else a Gpu on the shared one). */
  destroys?: boolean;
  hooks: (gpu: Gpu) => TrainHooks;
  reason: string;
  where: RegExp;
  /** The step named by the error (the one computed or saved when the device went). */
  step: number;
}

export interface LostSuite {
  /** The healthy shared device (reference run, resumes, injected-fault engines). */
  base: () => Gpu;
  /** Faults injected so far, by kind. */
  injected: Record<string, number>;
}

/** Declares the suite's hooks and one test per case; returns handles for extra tests. */
export function describeDeviceLoss(title: string, cases: readonly LostCase[], tag: string): LostSuite {
  let ref: Reference;
  let base: Gpu;
  const injected: Record<string, number> = {};
  beforeAll(async () => {
    base = await testGpu();
    ref = await referenceRun(base);
  }, 60_000);
  afterAll(() => {
    console.log(`[${tag}] faults injected: ${JSON.stringify(injected)}`);
    closeTestGpus();
  });

  describe(title, () => {
    test.each(cases)(
      '$name',
      async (c) => {
        const gpu = c.destroys ? await testGpu() : new Gpu({ device: base.device, profile: base.profile });
        const dir = tempDir('fault-lost');
        let afterEpoch1: Buffer | null = null;
        const hooks = c.hooks(gpu);
        const after = hooks.afterStep;
        const err = await train(faultConfig(dir), {
          gpu,
          out: sink(),
          hooks: {
            ...hooks,
            afterStep: async (s, l) => {
              if (s === 3) afterEpoch1 = readFileSync(join(dir, CHECKPOINT_FILE));
              await after?.(s, l);
            },
          },
        }).then(
          () => null,
          (e: unknown) => e,
        );
        injected[c.kind] = (injected[c.kind] ?? 0) + 1;
        expect(err).toBeInstanceOf(TrainDeviceLostError);
        expect(err).toBeInstanceOf(DeviceLostError);
        const e = err as TrainDeviceLostError;
        expect(gpu.lost).toBe(true);
        expect(e.reason).toBe(c.reason);
        expect(e.message).toMatch(new RegExp(`^WebGPU device lost \\(reason: ${c.reason}\\)`));
        expect(e.message).toMatch(c.where);
        const ckPath = join(dir, CHECKPOINT_FILE);
        expect(e.message).toContain(
          `Nothing was written from the lost device; the last checkpoint, ${ckPath} (step 3), is intact: ` +
            `continue with --resume ${dir} (steps 4-${c.step} are computed again)`,
        );
        expect(e.stop).toEqual({ step: c.step, checkpoint: ckPath, checkpointStep: 3 });

        // The checkpoint on disk is the one written after step 3, byte for byte, and verifies; its
        // tensors are those of the clean run at step 3.
        expect(afterEpoch1).not.toBeNull();
        expect(readFileSync(ckPath).equals(afterEpoch1!)).toBe(true);
        const ck = readCheckpoint(ckPath);
        expect(ck.meta.state.step).toBe(3);
        expectSameCheckpoint(parseCheckpointBytes(ref.bytes.get(3)!), ck);
        expect(temporaries(dir)).toEqual([]);
        expect(existsSync(join(dir, 'state_dict.safetensors'))).toBe(false);
        gpu.destroy();

        // --resume on another device (the first case: a new one; then the healthy shared one).
        const other = c === cases[0] ? await testGpu() : base;
        const r = await train(ck.meta.config, { gpu: other, out: sink(), resume: ck });
        expect(r.steps).toBe(TOTAL);
        expectSameCheckpoint(ref.final, readCheckpoint(r.checkpoint));
        expect(stepLosses(dir)).toEqual(ref.losses);
        if (other !== base) other.destroy();
      },
      60_000,
    );
  });
  return { base: () => base, injected };
}
