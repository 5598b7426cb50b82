/**
 * Evaluating the engine's own checkpoints (src/eval/load_model.ts with src/train/checkpoint.ts):
 *  - a training checkpoint (trainable tensors + TrainConfig): the frozen weights are rebuilt from
 *    the run's config, and the loaded model predicts exactly what the saved model predicted;
 *  - the ablation variant stored in the run (cnn-decoder) is the forward pass used;
 *  - a run whose frozen weights cannot be reproduced (seed edited in the metadata) is refused;
 *    --img-size and a different --config are refused for training checkpoints;
 *  - the PyTorch-style state_dict export (config = the TrainConfig in its metadata) loads too.
 */
import { createHash } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { modelPredictor, predictVolume, type SlicePredictor } from '../../src/eval/inference.js';
import { loadModel } from '../../src/app/load_model.js';
import type { Gpu } from '../../src/gpu/device.js';
import {
  decodeEntry,
  parseSafetensors,
  writeSafetensors,
  type StWriteEntry,
} from '../../src/io/safetensors.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { AdamW, SAM_LST_ADAMW } from '../../src/optim/adamw.js';
import { SAM_LST_SCHEDULE } from '../../src/optim/schedule.js';
import {
  checkpointBytes,
  datasetFingerprint,
  frozenHash,
  stateDictBytes,
} from '../../src/train/checkpoint.js';
import { presetConfig, type TrainConfig, type Variant } from '../../src/train/config.js';
import { buildModel, forwardVariant } from '../../src/train/variant.js';
import { closeTestGpus, rng, testGpu } from '../helpers.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

const dir = mkdtempSync(join(tmpdir(), 'samlst-evalck-'));
const vol = (() => {
  const d = 3;
  const h = 40;
  const w = 34;
  const image = new Float32Array(d * h * w).map((_, i) => 0.5 + 0.45 * Math.sin(i / 9) * Math.cos(i / 31));
  return { id: 'v', d, h, w, image };
})();

function runConfig(variant: Variant, seed = 5): TrainConfig {
  return {
    ...presetConfig('default'),
    model: SamLstConfig.tiny().with({ imgSize: 64 }).toJson(),
    variant,
    seed,
    out: dir,
  };
}

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => closeTestGpus());

/** A "trained" run: the built model with its trainable tensors perturbed, saved as a checkpoint. */
async function savedRun(variant: Variant, file: string) {
  const tc = runConfig(variant);
  const { model } = buildModel(gpu, tc);
  const r = rng(9);
  for (const [, t] of model.trainableParameters()) {
    const host = new Float32Array(t.shape.reduce((a, b) => a * b, 1)).map(() => (r.next() - 0.5) * 0.2);
    gpu.upload(t.buffer, 0, host);
  }
  const opt = new AdamW(
    model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
    SAM_LST_ADAMW,
  );
  const bytes = await checkpointBytes(model, opt, {
    config: tc,
    state: { step: 4, epoch: 1, batchInEpoch: 0, perm: null, orderRng: 1, augRng: 2, finished: false },
    schedule: SAM_LST_SCHEDULE,
    dataset: datasetFingerprint('phantom', ['a', 'b']),
    frozenHash: await frozenHash(model),
  });
  writeFileSync(join(dir, file), bytes);
  opt.dispose();
  return { model, tc };
}

describe('training checkpoints', () => {
  test('lst: rebuilt frozen weights + trained tensors predict as the saved model did', async () => {
    const { model, tc } = await savedRun('lst', 'lst.safetensors');
    model.eval();
    const want = await predictVolume(modelPredictor(model), vol, { inputSize: 48 });
    const sd = join(dir, 'lst_state_dict.safetensors');
    writeFileSync(sd, await stateDictBytes(model, { config: JSON.stringify(tc), step: '4' }));
    model.dispose();

    const l = await loadModel(gpu, join(dir, 'lst.safetensors'));
    expect(l.checkpoint.format).toBe('train-checkpoint');
    expect(l.variant).toBe('lst');
    expect(l.config.imgSize).toBe(64);
    expect(l.notes[0]).toMatch(/training checkpoint at step 4 \(epoch 1\); variant lst/);
    const got = await predictVolume(l.predictor, vol, { inputSize: 48 });
    expect(got).toEqual(want);
    expect(new Set(got).size).toBeGreaterThan(1);
    l.model.dispose();

    // the state_dict export
    const e = await loadModel(gpu, sd);
    expect(e.checkpoint.format).toBe('safetensors');
    expect(e.configHow).toBe('stored in the state_dict export metadata');
    expect(await predictVolume(e.predictor, vol, { inputSize: 48 })).toEqual(want);
    e.model.dispose();

    await expect(loadModel(gpu, join(dir, 'lst.safetensors'), { imgSize: 32 })).rejects.toThrow(
      /--img-size 32: training checkpoint .* rebuilds its frozen weights at the run's size 64/,
    );
    await expect(loadModel(gpu, join(dir, 'lst.safetensors'), { config: 'tiny' })).rejects.toThrow(
      /config mismatch: preset tiny \(--config tiny\) differs from the config stored in training checkpoint .*img_size 96 vs 64/,
    );
  });

  test('the run variant (cnn-decoder) is the forward pass used', async () => {
    const { model, tc } = await savedRun('cnn-decoder', 'cnn.safetensors');
    model.eval();
    // compare logits (the random frozen heads can make the labels constant)
    const S = 64;
    const x = new Float32Array(2 * 3 * S * S).map((_, i) => (i % 89) / 89);
    const run = async (p: SlicePredictor) => {
      p.begin?.();
      const out = await p.run(x, 2);
      p.end?.();
      return out;
    };
    const want = await run(modelPredictor(model, (m, t) => forwardVariant(m, 'cnn-decoder', t, null)));
    const lstView = await run(modelPredictor(model));
    expect(lstView).not.toEqual(want);
    const sd = join(dir, 'cnn_state_dict.safetensors');
    writeFileSync(sd, await stateDictBytes(model, { config: JSON.stringify(tc) }));
    model.dispose();
    for (const f of ['cnn.safetensors', 'cnn_state_dict.safetensors']) {
      const l = await loadModel(gpu, join(dir, f));
      expect(l.variant).toBe('cnn-decoder');
      expect(await run(l.predictor)).toEqual(want);
      l.model.dispose();
    }
  });

  test('frozen weights that cannot be reproduced are refused', async () => {
    const { model } = await savedRun('lst', 'lst2.safetensors');
    model.dispose();
    const st = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'lst2.safetensors'))));
    const meta = JSON.parse(st.metadata.meta!) as { config: TrainConfig };
    meta.config.seed += 1;
    const entries = new Map<string, StWriteEntry>();
    for (const [k, e] of st.tensors) {
      const data = decodeEntry(e, k);
      entries.set(k, { dtype: data instanceof Int32Array ? 'I32' : 'F32', shape: e.shape, data });
    }
    // A consistent edit (metadata checksum recomputed): only the frozen-weight check can catch it.
    const json = JSON.stringify(meta);
    const metaSha = createHash('sha256').update(json).digest('hex');
    writeFileSync(
      join(dir, 'edited.safetensors'),
      writeSafetensors(entries, { ...st.metadata, meta: json, meta_sha256: metaSha }),
    );
    await expect(loadModel(gpu, join(dir, 'edited.safetensors'))).rejects.toThrow(
      /training checkpoint .*edited\.safetensors: the rebuilt frozen weights differ from the run's/,
    );
  });
});
