/**
 * The ablation variants (src/train/variant.ts) through the training loop on the tiny phantom:
 *  - trainable sets: lst = alpha + output_upscaling + ResNet; cnn-decoder = output_upscaling +
 *    ResNet; sam-decoder = output_upscaling only;
 *  - cnn-decoder never runs the SAM encoder and the gate stays at alpha = 0;
 *  - sam-decoder leaves the ResNet (weights and BatchNorm buffers) untouched and trains only
 *    output_upscaling.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { decodeEntry, parseSafetensors } from '../../src/io/safetensors.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { train } from '../../src/train/loop.js';
import { setVariantTrainable } from '../../src/train/variant.js';
import { closeTestGpus, testDir, testGpu } from '../helpers.js';
import { sink, tempDir, tinyModel, tinyTrainConfig } from './util.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

function stateDict(path: string): Map<string, Float32Array | Int32Array> {
  const st = parseSafetensors(readFileSync(path));
  return new Map([...st.tensors].map(([k, e]) => [k, decodeEntry(e, k)]));
}

test('trainable sets', () => {
  const m = new SamLST(gpu, tinyModel(), { seed: 1 });
  try {
    const groups = (names: string[]) =>
      [
        ...new Set(
          names.map((n) =>
            n.startsWith('CNN_encoder.') ? 'CNN_encoder' : n.replace(/\.\d+\.(weight|bias)$/, ''),
          ),
        ),
      ].sort();
    expect(groups(setVariantTrainable(m, 'lst'))).toEqual([
      'CNN_encoder',
      'sam.alpha',
      'sam.mask_decoder.output_upscaling',
    ]);
    expect(groups(setVariantTrainable(m, 'cnn-decoder'))).toEqual([
      'CNN_encoder',
      'sam.mask_decoder.output_upscaling',
    ]);
    expect(groups(setVariantTrainable(m, 'sam-decoder'))).toEqual(['sam.mask_decoder.output_upscaling']);
  } finally {
    m.dispose();
  }
});

describe('training', () => {
  test('cnn-decoder: no encoder runs, gate fixed', async () => {
    const out = tempDir('cnn-dec');
    const o = sink();
    const r = await train(tinyTrainConfig(out, { variant: 'cnn-decoder', maxSteps: 2 }), { gpu, out: o });
    expect(r.steps).toBe(2);
    expect(r.cache.encoded).toBe(0);
    expect(o.text()).toMatch(/unused: the cnn-decoder variant never runs the SAM encoder/);
    const sd = stateDict(r.stateDict);
    expect(sd.get('sam.alpha')![0]).toBe(0);
    expect(sd.get('CNN_encoder.bn1.num_batches_tracked')![0]).toBe(2);
  });

  test('sam-decoder: ResNet untouched, only output_upscaling trains', async () => {
    const out = tempDir('sam-dec');
    const r = await train(tinyTrainConfig(out, { variant: 'sam-decoder', maxSteps: 2 }), {
      gpu,
      out: sink(),
    });
    expect(r.cache.encoded).toBeGreaterThan(0);
    const sd = stateDict(r.stateDict);
    const init = new SamLST(gpu, tinyModel(), { seed: tinyTrainConfig(out).seed });
    try {
      for (const [k, t] of init.stateDict()) {
        const now = sd.get(k)!;
        const was = await t.read();
        if (k.includes('output_upscaling')) {
          if (k.endsWith('weight') && t.shape.length > 1) expect(now, k).not.toEqual(was);
        } else expect(now, k).toEqual(was);
      }
    } finally {
      init.dispose();
    }
  });
});

describe('weights files named after their sha256 (torchvision convention)', () => {
  test('a file whose content does not match its name is refused; a matching one loads', async () => {
    const { createHash } = await import('node:crypto');
    const { copyFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { readWeights } = await import('../../src/train/variant.js');
    const src = join(testDir, 'fixtures', 'tiny_sam_lst.pth');
    const dir = mkdtempSync(join(tmpdir(), 'weights-'));
    const digest = createHash('sha256').update(readFileSync(src)).digest('hex');
    const good = join(dir, `tiny-${digest.slice(0, 8)}.pth`);
    const bad = join(dir, 'tiny-00000000.pth');
    copyFileSync(src, good);
    copyFileSync(src, bad);
    expect(readWeights(good).size).toBe(355);
    expect(() => readWeights(bad)).toThrow(/tiny-00000000\.pth: sha256 .* does not start with 00000000/);
  });
});
