/**
 * The training loop end to end on a tiny phantom configuration (8 slices, batch 3, 3 iterations
 * per epoch with a short last batch):
 *  - resume equivalence: 4 steps, stop (mid-epoch), --resume, up to 7 steps equals 7 steps straight
 *    through, bit for bit (parameters, BN buffers, AdamW moments, loop/Rng state, per-step losses);
 *  - a NaN loss (injected through the loop's test hook at step 5) stops the run with a message naming
 *    the step, before that update, and the last good checkpoint (end of epoch 1, step 3) is left as
 *    it was and still loads;
 *  - an lr so large that the weights overflow makes the next step's loss non-finite and trainStep
 *    refuses it; a non-finite lr is refused by AdamW itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { tidy } from '../../src/tensor/scope.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import { MetricsLog, type StepRecord } from '../../src/train/log.js';
import { NonFiniteLossError, train, trainStep } from '../../src/train/loop.js';
import { closeTestGpus, testGpu } from '../helpers.js';
import { expectSameCheckpoint, sink, tempDir, tinyStepSetup, tinyTrainConfig } from './util.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

function stepLosses(dir: string): number[] {
  return MetricsLog.read(join(dir, 'metrics.jsonl'))
    .filter((r): r is StepRecord => r.type === 'step')
    .map((r) => r.loss);
}

describe('resume', () => {
  test('4 steps + resume to 7 equals 7 straight, bit for bit', async () => {
    const straight = tempDir('straight');
    const split = tempDir('split');
    const cacheDir = tempDir('split-cache');
    const o = sink();
    await train(tinyTrainConfig(straight, { maxSteps: 7 }), { gpu, out: o });
    const r1 = await train(tinyTrainConfig(split, { maxSteps: 4, cacheDir }), { gpu, out: o });
    expect(r1.steps).toBe(4);
    const mid = readCheckpoint(r1.checkpoint);
    expect(mid.meta.state).toMatchObject({ step: 4, epoch: 1, batchInEpoch: 1, finished: false });
    expect(mid.meta.state.perm).toHaveLength(8);
    // Resume with a longer --max-steps (the disk cache now has the embeddings of steps 1-4).
    const cfg = { ...mid.meta.config, maxSteps: 7 };
    const r2 = await train(cfg, { gpu, out: o, resume: mid });
    expect(r2.steps).toBe(7);
    expect(r2.cache.hits).toBeGreaterThan(0);

    const a = readCheckpoint(join(straight, 'checkpoint.safetensors'));
    const b = readCheckpoint(r2.checkpoint);
    expectSameCheckpoint(a, b);
    const la = stepLosses(straight);
    const lb = stepLosses(split); // steps 1-4 from the first run, 5-7 appended by the resume
    expect(la).toHaveLength(7);
    expect(lb).toEqual(la);
    // The resumed run's final state_dict equals the straight one's.
    expect(readFileSync(join(split, 'state_dict.safetensors')).subarray(-4096)).toEqual(
      readFileSync(join(straight, 'state_dict.safetensors')).subarray(-4096),
    );
  });
});

describe('non-finite loss', () => {
  test('NaN at step 5 stops the run naming the step; the epoch-1 checkpoint is kept', async () => {
    const dir = tempDir('nan');
    const o = sink();
    let ckAfterEpoch1: Buffer | null = null;
    const run = train(tinyTrainConfig(dir), {
      gpu,
      out: o,
      hooks: {
        afterStep: (step) => {
          if (step === 3) ckAfterEpoch1 = readFileSync(join(dir, 'checkpoint.safetensors'));
        },
        onLoss: (step, l) => (step === 5 ? { ...l, total: NaN } : undefined),
      },
    });
    await expect(run).rejects.toThrow(NonFiniteLossError);
    await expect(run).rejects.toThrow(
      /loss is NaN at step 5 .*last good checkpoint is .*checkpoint\.safetensors \(step 3\)/,
    );
    const err = (await run.catch((e: unknown) => e)) as NonFiniteLossError;
    expect(err.step).toBe(5);
    expect(o.text()).toMatch(/loss is NaN at step 5/);
    // The checkpoint is the one of the end of epoch 1 (step 3), byte for byte, and verifies.
    expect(ckAfterEpoch1).not.toBeNull();
    expect(readFileSync(join(dir, 'checkpoint.safetensors')).equals(ckAfterEpoch1!)).toBe(true);
    expect(readCheckpoint(join(dir, 'checkpoint.safetensors')).meta.state.step).toBe(3);
    // metrics.jsonl has the 4 good steps; the report says why the run stopped.
    expect(stepLosses(dir)).toHaveLength(4);
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toMatch(/STOPPED: loss is NaN at step 5/);
  });

  test('an overflowing lr: the next loss is not finite and trainStep refuses to apply it', async () => {
    const { model, opt, image, labels } = tinyStepSetup(gpu, 1, 13);
    try {
      const emb = tidy(() => noGrad(() => model.encode(image)));
      await expect(
        trainStep(model, opt, 'lst', image, labels, emb, { lr: Infinity, step: 1 }),
      ).rejects.toThrow(/AdamW: lr = Infinity/);
      const l1 = await trainStep(model, opt, 'lst', image, labels, emb, { lr: 1e38, step: 1 });
      expect(Number.isFinite(l1.total)).toBe(true);
      await expect(trainStep(model, opt, 'lst', image, labels, emb, { lr: 1e-3, step: 2 })).rejects.toThrow(
        /loss is (NaN|-?Infinity) at step 2/,
      );
      emb.dispose();
    } finally {
      image.dispose();
      labels.dispose();
      opt.dispose();
      model.dispose();
    }
  });
});
