/**
 * A NaN/Inf in a gradient (the loss case is test/train/resume.test.ts's):
 *  - in the loop: a NaN written into one gradient at step 5 (hooks.onGrads, after backward) is
 *    caught by the per-parameter GPU sums read back with the loss; the run stops with a
 *    NonFiniteGradientError naming the step and the parameter, before that update; the checkpoint on
 *    disk is byte for byte the one of step 3, verifies, and holds the tensors of a clean run at
 *    step 3; metrics.jsonl has the 4 good steps and report.md says why the run stopped;
 *  - in trainStep: +Inf and −Inf in one gradient (their sum is NaN) and a NaN in a later one: the
 *    message names the first parameter in the model's order and the other; nothing is applied
 *    (parameters bit-identical, AdamW step counts unchanged, gradients dropped);
 *  - finite gradients whose sum overflows f32 are not reported (the gradient itself is read to tell
 *    them apart) and the update is applied.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/device.js';
import { tidy } from '../../src/tensor/scope.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import {
  CHECKPOINT_FILE,
  NonFiniteGradientError,
  NonFiniteLossError,
  train,
  trainStep,
  type ParamGrad,
} from '../../src/train/loop.js';
import { closeTestGpus, testGpu } from '../helpers.js';
import { sink, tempDir, tinyStepSetup } from '../train/util.js';
import { expectSameCheckpoint, faultConfig, stepLosses } from './faults_util.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

const injected: Record<string, number> = {};
afterAll(() => console.log(`[faults_nonfinite] non-finite gradients injected: ${JSON.stringify(injected)}`));

function poke(g: ParamGrad, values: Record<number, number>): void {
  for (const [i, v] of Object.entries(values)) gpu.upload(g.grad.buffer, Number(i) * 4, Float32Array.of(v));
}

describe('non-finite gradient in the loop', () => {
  test('NaN in a gradient at step 5: stops naming step and parameter; the step-3 checkpoint is kept', async () => {
    const clean = tempDir('nan-grad-clean');
    await train(faultConfig(clean, { maxSteps: 3 }), { gpu, out: sink() });

    const dir = tempDir('nan-grad');
    const o = sink();
    let afterEpoch1: Buffer | null = null;
    let size = 0;
    const target = 'CNN_encoder.layer2.0.conv1.weight';
    const err = await train(faultConfig(dir), {
      gpu,
      out: o,
      hooks: {
        afterStep: (s) => {
          if (s === 3) afterEpoch1 = readFileSync(join(dir, CHECKPOINT_FILE));
        },
        onGrads: (s, grads) => {
          if (s !== 5) return;
          const g = grads.find((x) => x.name === target)!;
          size = g.grad.size;
          poke(g, { 7: NaN });
          injected['NaN (loop)'] = 1;
        },
      },
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NonFiniteGradientError);
    expect(err).toBeInstanceOf(NonFiniteLossError);
    const e = err as NonFiniteGradientError;
    const ckPath = join(dir, CHECKPOINT_FILE);
    expect(e.message).toMatch(
      new RegExp(
        `^gradient of ${target.replaceAll('.', '\\.')} is not finite at step 5 \\(1 NaN and 0 ±Inf of ${size} ` +
          `values; loss \\d+\\.\\d+\\) \\(epoch 2\\): training stopped before applying this update; ` +
          `the last good checkpoint is ${ckPath} \\(step 3\\), left as it was$`,
      ),
    );
    expect(size).toBeGreaterThan(100);
    expect(e.step).toBe(5);
    expect(e.parameter).toBe(target);
    expect(e.checkpoint).toBe(ckPath);
    expect(o.text()).toContain(`gradient of ${target} is not finite at step 5`);

    expect(readFileSync(ckPath).equals(afterEpoch1!)).toBe(true);
    const ck = readCheckpoint(ckPath);
    expect(ck.meta.state.step).toBe(3);
    expectSameCheckpoint(readCheckpoint(join(clean, CHECKPOINT_FILE)), ck);
    expect(stepLosses(dir)).toHaveLength(4);
    expect(stepLosses(dir)).toEqual(stepLosses(clean).concat(stepLosses(dir).slice(3)));
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toMatch(
      new RegExp(`STOPPED: gradient of ${target.replaceAll('.', '\\.')} is not finite at step 5`),
    );
  }, 60_000);
});

describe('non-finite gradient in trainStep', () => {
  test('the first parameter in model order is named, nothing is applied; an overflowing sum is not an error', async () => {
    const { model, opt, image, labels } = tinyStepSetup(gpu, 5, 29);
    const emb = tidy(() => noGrad(() => model.encode(image)));
    const snapshot = async () =>
      Promise.all(model.trainableParameters().map(async ([, t]) => (await t.read()).slice()));
    try {
      await trainStep(model, opt, 'lst', image, labels, emb, { lr: 1e-3, step: 1 });
      const before = await snapshot();
      const names = model.trainableParameters().map(([n]) => n);
      const counts = names.map((n) => opt.stepCount(n));
      let first = '';
      let second = '';
      await expect(
        trainStep(model, opt, 'lst', image, labels, emb, {
          lr: 1e-3,
          step: 2,
          onGrads: (_s, grads) => {
            // Later parameter: a NaN; earlier one: +Inf and −Inf (sum NaN, no NaN element).
            second = grads[20]!.name;
            first = grads[6]!.name;
            poke(grads[20]!, { 0: NaN });
            poke(grads[6]!, { 1: Infinity, 2: -Infinity });
            injected['±Inf + NaN (trainStep)'] = 1;
          },
        }),
      ).rejects.toThrow(NonFiniteGradientError);
      const after = await snapshot();
      for (let i = 0; i < before.length; i++) expect(after[i], names[i]).toEqual(before[i]);
      expect(names.map((n) => opt.stepCount(n))).toEqual(counts);
      expect(model.trainableParameters().every(([, t]) => t.grad === null)).toBe(true);
      expect(names.indexOf(first)).toBeLessThan(names.indexOf(second));

      // The message: the earlier parameter first, with its counts, then the other.
      const err = await trainStep(model, opt, 'lst', image, labels, emb, {
        lr: 1e-3,
        step: 3,
        onGrads: (_s, grads) => {
          poke(grads[20]!, { 0: NaN });
          poke(grads[6]!, { 1: Infinity, 2: -Infinity });
        },
      }).catch((e: unknown) => e as NonFiniteGradientError);
      expect(err).toBeInstanceOf(NonFiniteGradientError);
      expect((err as NonFiniteGradientError).parameter).toBe(first);
      expect((err as Error).message).toMatch(
        new RegExp(
          `^gradient of ${first.replaceAll('.', '\\.')} is not finite at step 3 \\(0 NaN and 2 ±Inf of \\d+ values; ` +
            `loss [\\d.]+\\); 1 more parameter\\(s\\) with non-finite gradients: ${second.replaceAll('.', '\\.')}$`,
        ),
      );

      // Finite values whose f32 sum overflows to Inf: read back, found finite, and applied.
      let big = '';
      await trainStep(model, opt, 'lst', image, labels, emb, {
        lr: 1e-3,
        step: 4,
        onGrads: (_s, grads) => {
          big = grads[6]!.name;
          poke(grads[6]!, { 0: 3e38, 1: 3e38 });
          injected['overflowing finite sum (trainStep, not an error)'] = 1;
        },
      });
      expect(opt.stepCount(big)).toBe(counts[names.indexOf(big)]! + 1);
      expect((await snapshot()).every((p) => p.every(Number.isFinite))).toBe(true);
    } finally {
      emb.dispose();
      image.dispose();
      labels.dispose();
      opt.dispose();
      model.dispose();
    }
  }, 60_000);
});
