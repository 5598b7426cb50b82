/**
 * Shared pieces of the training tests: a tiny model / phantom configuration that trains in seconds
 * on lavapipe, a tiny model with its optimizer and one batch, checkpoint comparison, and temporary
 * folders.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { AdamW, SAM_LST_ADAMW } from '../../src/optim/adamw.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { Checkpoint } from '../../src/train/checkpoint.js';
import { presetConfig, type TrainConfig } from '../../src/train/config.js';

/** A small model: input 64 (grid 4), ViT dim 32 x 2 blocks, ResNet width 8, decoder dim 32. */
export function tinyModel(): SamLstConfig {
  return new SamLstConfig({
    imgSize: 64,
    encDim: 32,
    encDepth: 2,
    encHeads: 2,
    windowSize: 2,
    globalAttnIndexes: [1],
    promptDim: 32,
    cnnWidth: 8,
    cnnFcOut: 10,
    decHeads: 2,
    decMlpDim: 64,
    iouHeadHidden: 32,
    maskInChans: 8,
  });
}

/** 8 phantom training slices (2 cases x 4) and one 4-slice test volume, all 64x64; batch 3. */
export function tinyTrainConfig(out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  const c = presetConfig('default');
  return {
    ...c,
    model: tinyModel().toJson(),
    phantom: { trainCases: 2, slicesPerCase: 4, size: 64, testCases: 1, testSize: 64, depth: 4 },
    batchSize: 3,
    epochs: 3,
    warmupPeriod: 2,
    evalBefore: false,
    valEvery: 0,
    overlays: 1,
    cacheMemMb: 64,
    out,
    ...over,
  };
}

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `samlst-${tag}-`));
}

/** A sink for the loop's progress output (kept for failure messages). */
export function sink(): { write(s: string): boolean; text: () => string; isTTY: boolean } {
  let buf = '';
  return {
    isTTY: false,
    write(s: string) {
      buf += s;
      return true;
    },
    text: () => buf,
  };
}

/**
 * tinyModel() with seeded weights, its AdamW (SAM-LST settings) and one batch of 2: image pixels
 * (i % period) / period, labels i % 9 at a quarter of the input size. The caller disposes all.
 */
export function tinyStepSetup(
  gpu: Gpu,
  seed: number,
  period: number,
): { model: SamLST; opt: AdamW; image: Tensor; labels: Tensor } {
  const cfg = tinyModel();
  const model = new SamLST(gpu, cfg, { seed });
  const opt = new AdamW(
    model.trainableParameters().map(([name, tensor]) => ({ name, tensor })),
    SAM_LST_ADAMW,
  );
  const S = cfg.imgSize;
  const image = Tensor.fromData(
    gpu,
    Float32Array.from({ length: 2 * 3 * S * S }, (_, i) => (i % period) / period),
    [2, 3, S, S],
  );
  const labels = Tensor.fromData(
    gpu,
    Int32Array.from({ length: 2 * (S / 4) ** 2 }, (_, i) => i % 9),
    [2, S / 4, S / 4],
  );
  return { model, opt, image, labels };
}

/** Parameters, BatchNorm buffers, AdamW moments and step counts, loop state: all bit-equal. */
export function expectSameCheckpoint(a: Checkpoint, b: Checkpoint): void {
  expect(b.meta.state).toEqual(a.meta.state);
  expect([...b.model.keys()]).toEqual([...a.model.keys()]);
  for (const [k, t] of a.model) expect(b.model.get(k)!.data, k).toEqual(t.data);
  expect(Object.keys(b.optim.params)).toEqual(Object.keys(a.optim.params));
  for (const [k, p] of Object.entries(a.optim.params)) {
    expect(b.optim.params[k]!.step, k).toBe(p.step);
    expect(b.optim.params[k]!.m.data, k).toEqual(p.m.data);
    expect(b.optim.params[k]!.v.data, k).toEqual(p.v.data);
  }
}
