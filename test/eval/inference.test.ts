/**
 * Per-volume inference (src/eval/inference.ts, spec §13):
 *  - with a fake predictor, the label volumes equal test/oracle/metrics_ref.py `predict_volume`
 *    (scipy 1.10.1) on three size combinations (hashes computed by the oracle, see below);
 *  - with the tiny SAM-LST fixture model (network 96), inferVolume equals a direct composition of
 *    the zoom calls of src/data/resample.ts, one model call per slice and an argmax;
 *  - batching slices (1, 3, 5 per call) gives identical labels (and logits within f32 noise);
 *  - argmax tie rule, argument checks, and the model's train/eval mode is restored.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../../src/autograd/tape.js';
import { zoomBy } from '../../src/data/resample.js';
import {
  argmaxChannels,
  inferVolume,
  modelPredictor,
  predictVolume,
  resampleSliceForNetwork,
  type SlicePredictor,
} from '../../src/eval/inference.js';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth } from '../../src/io/pth.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { closeTestGpus, fixturesDir, rng, testGpu } from '../helpers.js';

/** The oracle test volume: ((x-20)² + (y-15)²)/900 + 0.1 z + ((7x + 13y) mod 5)/50, as float32. */
function oracleVolume(d: number, h: number, w: number): Float32Array {
  const v = new Float32Array(d * h * w);
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        v[(z * h + y) * w + x] =
          ((x - 20) ** 2 + (y - 15) ** 2) / 900 + z * 0.1 + ((x * 7 + y * 13) % 5) / 50;
  return v;
}

/** One-hot logits of 4 intensity bands (the oracle's dummy predictor). */
function bandPredictor(size: number): SlicePredictor & { calls: number[] } {
  const calls: number[] = [];
  return {
    size,
    inChans: 3,
    channels: 4,
    calls,
    run(images, b) {
      calls.push(b);
      const n = size * size;
      const out = new Float32Array(b * 4 * n);
      for (let i = 0; i < b; i++)
        for (let p = 0; p < n; p++) {
          const s = images[i * 3 * n + p]!;
          const cls = s < 0.25 ? 0 : s < 0.5 ? 1 : s < 0.75 ? 2 : 3;
          out[(i * 4 + cls) * n + p] = 1;
        }
      return Promise.resolve(out);
    },
  };
}

function fnv(a: Int32Array): string {
  let h = 0x811c9dc5;
  for (const v of a) {
    h ^= v >>> 0;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `0x${h.toString(16)}`;
}

function counts(a: Int32Array, n: number): number[] {
  const c = new Array<number>(n).fill(0);
  for (const v of a) c[v]!++;
  return c;
}

describe('resampling path equals the scipy oracle', () => {
  // /usr/bin/python3 (scipy 1.10.1, numpy 1.24): metrics_ref.predict_volume(vol(d, h, w), pred,
  // patch_size=P, input_size=I) with the volume and band predictor above; FNV-1a of the int labels.
  test.each([
    [3, 37, 45, 48, 24, '0xe558aac8', [935, 1999, 1373, 688]],
    [2, 24, 24, 40, 24, '0xa2be1672', [540, 459, 147, 6]],
    [2, 50, 31, 32, 32, '0x4934d60f', [925, 909, 497, 769]],
  ] as const)('(%i, %i, %i) via %i / %i', async (d, h, w, P, I, hash, cnt) => {
    const image = oracleVolume(d, h, w);
    for (const batchSize of [1, 2]) {
      const pred = await predictVolume(
        bandPredictor(P),
        { id: 'v', d, h, w, image },
        { inputSize: I, batchSize },
      );
      expect(counts(pred, 4)).toEqual(cnt);
      expect(fnv(pred)).toBe(hash);
    }
  });

  test('batches cover the volume in order; progress is reported', async () => {
    const p = bandPredictor(16);
    const seen: number[] = [];
    await predictVolume(
      p,
      { id: 'v', d: 7, h: 20, w: 20, image: oracleVolume(7, 20, 20) },
      { inputSize: 16, batchSize: 3, onProgress: (done) => seen.push(done) },
    );
    expect(p.calls).toEqual([3, 3, 1]);
    expect(seen).toEqual([3, 6, 7]);
  });

  test('argmax: first maximum wins; bad arguments are refused with the value', async () => {
    // 2 pixels, 3 channels: pixel 0 ties channels 1 and 2, pixel 1 ties 0 and 2
    const logits = Float32Array.from([0, 5, 1, 1, 1, 5]);
    expect([...argmaxChannels(logits, 1, 3, 2)]).toEqual([1, 0]);
    const vol = { id: 'v', d: 1, h: 4, w: 4, image: new Float32Array(16) };
    await expect(predictVolume(bandPredictor(8), vol, { batchSize: 0 })).rejects.toThrow(/batchSize.*got 0/);
    await expect(predictVolume(bandPredictor(8), { ...vol, d: 2 })).rejects.toThrow(
      /volume 'v': image has 16 values, expected d x h x w = 2 x 4 x 4 = 32/,
    );
    const short: SlicePredictor = { ...bandPredictor(8), run: () => Promise.resolve(new Float32Array(3)) };
    await expect(predictVolume(short, vol, { inputSize: 8 })).rejects.toThrow(/predictor returned 3 values/);
  });
});

describe('tiny SAM-LST model (network 96)', () => {
  let gpu: Gpu;
  let model: SamLST;
  const cfg = SamLstConfig.tiny();
  // a small volume with structure: 5 slices of 40 x 52, values in [0, 1]
  const d = 5;
  const h = 40;
  const w = 52;
  const image = new Float32Array(d * h * w);
  const r = rng(3);
  for (let z = 0; z < d; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        image[(z * h + y) * w + x] =
          0.5 + 0.35 * Math.sin((x + 3 * z) / 6) * Math.cos(y / 5) + 0.1 * (r.next() - 0.5);
  const vol = { id: 'tiny', d, h, w, image };

  beforeAll(async () => {
    gpu = await testGpu();
    const ck = readPth(
      new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth'))),
      'tiny_sam_lst.pth',
    );
    model = SamLST.fromCheckpoint(gpu, cfg, ck);
  });
  afterAll(() => {
    model.dispose();
    closeTestGpus();
  });

  test('inferVolume equals zoom → zoom → model (batch 1) → argmax → zoom back, slice by slice', async () => {
    model.train(); // inferVolume must switch to eval mode and restore this afterwards
    const got = await inferVolume(model, vol, { inputSize: 224, batchSize: 1 });
    expect(model.training).toBe(true);
    model.eval();
    const S = cfg.imgSize;
    const want = new Int32Array(d * h * w);
    for (let z = 0; z < d; z++) {
      const s0 = image.subarray(z * h * w, (z + 1) * h * w);
      const a = zoomBy(s0, h, w, 224 / h, 224 / w, 3);
      expect([a.h, a.w]).toEqual([224, 224]);
      const b = zoomBy(a.data, a.h, a.w, S / a.h, S / a.w, 3);
      expect([b.h, b.w]).toEqual([S, S]);
      expect(resampleSliceForNetwork(s0, h, w, 224, S)).toEqual(b.data);
      const x = new Float32Array(3 * S * S);
      for (let c = 0; c < 3; c++) x.set(b.data, c * S * S);
      const xt = Tensor.fromData(gpu, x, [1, 3, S, S]);
      const masks = tidy(() => noGrad(() => model.forward(xt).masks));
      const logits = await masks.readFloat();
      masks.dispose();
      xt.dispose();
      const lab = argmaxChannels(logits, 1, cfg.numMaskTokens, S * S);
      const back = zoomBy(lab, S, S, h / S, w / S, 0);
      expect([back.h, back.w]).toEqual([h, w]);
      want.set(back.data, z * h * w);
    }
    expect(got).toEqual(want);
    // the fixture model is random, but its prediction is not constant: a meaningful comparison
    expect(new Set(got).size).toBeGreaterThan(1);
  });

  test('batching slices gives the same labels as one at a time', async () => {
    const one = await inferVolume(model, vol, { batchSize: 1 });
    for (const batchSize of [3, 5]) expect(await inferVolume(model, vol, { batchSize })).toEqual(one);
    // the logits themselves agree to f32 noise between batch 1 and batch 5
    const p = modelPredictor(model);
    const S = cfg.imgSize;
    const x = new Float32Array(5 * 3 * S * S);
    for (let z = 0; z < 5; z++) {
      const s = resampleSliceForNetwork(image.subarray(z * h * w, (z + 1) * h * w), h, w, 224, S);
      for (let c = 0; c < 3; c++) x.set(s, (z * 3 + c) * S * S);
    }
    p.begin!();
    const all = await p.run(x, 5);
    const n = cfg.numMaskTokens * S * S;
    let maxDiff = 0;
    for (let z = 0; z < 5; z++) {
      const single = await p.run(x.slice(z * 3 * S * S, (z + 1) * 3 * S * S), 1);
      for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(single[i]! - all[z * n + i]!));
    }
    p.end!();
    expect(maxDiff).toBeLessThan(1e-4);
  });
});
