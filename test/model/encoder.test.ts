/**
 * The SAM ViT image encoder at ViT-B widths (dim 768, 12 heads, window 14, MLP 3072) on a 224 input
 * (grid 14: one window, no padding; global tables 27 rows): it runs with random (seeded) weights,
 * produces a finite (B, 256, 14, 14) embedding, records nothing on the tape, frees its activations
 * block by block (peak pool bytes above the weights stay near one block's working set), and frees
 * everything when disposed. Depth is reduced (SAMLST_VITB_DEPTH, default 2 with block 1 global) to
 * keep the file fast on lavapipe; set SAMLST_VITB_DEPTH=12 for the full encoder.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { ImageEncoderViT } from '../../src/nn/sam/image_encoder.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';
import { closeTestGpus, testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

const MB = 1 << 20;

test('ViT-B-shaped encoder runs at 224 with about one block of activation memory', async () => {
  const depth = Number(process.env.SAMLST_VITB_DEPTH ?? 2);
  const global = depth >= 12 ? [2, 5, 8, 11] : [depth - 1];
  const cfg = SamLstConfig.vitB(224).with({ encDepth: depth, globalAttnIndexes: global });
  const t0 = performance.now();
  const enc = new ImageEncoderViT(gpu, cfg, new Rng(7));
  // SAM's rel-pos tables and pos_embed start at zero; give them values so the paths are exercised.
  const r = new Rng(8);
  for (const [n, p] of enc.namedParameters())
    if (n.includes('rel_pos') || n === 'pos_embed') gpu.upload(p.buffer, 0, r.fill(p.size, -0.1, 0.1));
  const tInit = performance.now() - t0;
  const B = 1;
  const img = Tensor.fromData(gpu, new Rng(9).fill(B * 3 * 224 * 224, 0, 1), [B, 3, 224, 224]);
  await gpu.sync();
  gpu.pool.resetPeak();
  const before = gpu.stats().pool.liveBytes;
  const t1 = performance.now();
  const y = enc.forward(img);
  const out = await y.readFloat();
  const tRun = performance.now() - t1;
  const peakExtra = gpu.stats().pool.peakLiveBytes - before;
  const weights = enc.namedParameters().reduce((n, [, p]) => n + p.bytes, 0);

  expect(y.shape).toEqual([B, 256, 14, 14]);
  expect(y.requiresGrad).toBe(false);
  expect(y.gradFn).toBeNull();
  expect(out.every(Number.isFinite)).toBe(true);
  // LayerNorm2d output: per pixel, mean over channels ~ bias mean (0), variance ~ 1.
  let m = 0;
  for (let c = 0; c < 256; c++) m += out[c * 196]!;
  expect(Math.abs(m / 256)).toBeLessThan(1e-3);

  // One block's working set at B=1, 196 tokens: x, norm, qkv (3x), attention out, MLP hidden
  // (4x dim) ~ 10 x 196 x 768 x 4 B ~ 6 MB; patch embedding + neck add a few MB. Keeping every
  // block's activations would grow with depth; the bound does not.
  const block = 196 * 768 * 4;
  console.log(
    `ViT-B depth ${depth} @224: init ${(tInit / 1000).toFixed(1)} s, forward ${(tRun / 1000).toFixed(1)} s, ` +
      `weights ${(weights / MB).toFixed(0)} MB, peak above weights+input ${(peakExtra / MB).toFixed(1)} MB ` +
      `(pool peak ${(gpu.stats().pool.peakLiveBytes / MB).toFixed(0)} MB)`,
  );
  expect(peakExtra).toBeLessThan(24 * block + 8 * MB);

  y.dispose();
  img.dispose();
  enc.dispose();
  expect(gpu.stats().pool.liveBytes).toBe(0);
});
