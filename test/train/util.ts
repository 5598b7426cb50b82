/**
 * Shared pieces of the training tests: a tiny model / phantom configuration that trains in seconds
 * on lavapipe, and temporary folders.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SamLstConfig } from '../../src/nn/config.js';
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
