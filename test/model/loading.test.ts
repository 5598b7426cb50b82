/**
 * Checkpoint loading into SamLST against the oracle-made fixtures in test/fixtures/pth:
 *  - dataparallel.pth (a micro SAM-LST saved through nn.DataParallel, with 'module.' prefixes and
 *    the 'sam_encoder.' alias) loads strictly and every value, including the int64
 *    num_batches_tracked counters, arrives unchanged;
 *  - loadOfficial(official_small.pth, resnet_small.pth) into a model whose fresh state is the
 *    oracle's adapt_fresh_g4.pth equals the oracle's adapt_sam_state_dict output
 *    (adapt_expected_g4.pth: pos_embed 8 -> 4 and global rel-pos tables resized, decoder heads kept
 *    fresh, alpha untouched) and the ResNet weights;
 *  - missing / wrong-shape / foreign keys fail with a report naming them, and a failed
 *    fromCheckpoint frees the model.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth, type PthTensor } from '../../src/io/pth.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { BatchNorm2d } from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import type { HostTensor } from '../../src/tensor/host.js';
import { closeTestGpus, fixturesDir, loadJson, testGpu } from '../helpers.js';

const pthDir = join(fixturesDir, 'pth');
const load = (name: string, dir = pthDir) => readPth(new Uint8Array(readFileSync(join(dir, name))), name);

/** make_pth_variants.py micro_cfg(). */
const microCfg = new SamLstConfig({
  imgSize: 8,
  patchSize: 4,
  encDim: 8,
  encDepth: 1,
  encHeads: 2,
  windowSize: 1,
  globalAttnIndexes: [0],
  promptDim: 8,
  maskInChans: 4,
  decDepth: 1,
  decHeads: 2,
  decMlpDim: 16,
  numClasses: 2,
  iouHeadHidden: 8,
  cnnWidth: 2,
  cnnFcOut: 3,
});

/** make_pth_variants.py small_sam_cfg(4 * grid, 8). */
const smallCfg = (grid: number) =>
  microCfg.with({
    imgSize: 4 * grid,
    encDepth: 4,
    windowSize: 2,
    globalAttnIndexes: [1, 3],
    numClasses: 8,
  });

async function state(m: Module): Promise<Map<string, HostTensor>> {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of m.stateDict()) out.set(k, await t.toHost());
  return out;
}

function maxDiff(a: HostTensor, b: HostTensor): number {
  expect(a.shape).toEqual(b.shape);
  let d = 0;
  for (let i = 0; i < a.data.length; i++) d = Math.max(d, Math.abs(a.data[i]! - b.data[i]!));
  return d;
}

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(closeTestGpus);

describe('SAM-LST checkpoints', () => {
  test('a DataParallel checkpoint with the sam_encoder alias loads strictly, values intact', async () => {
    const ckpt = load('dataparallel.pth');
    expect([...ckpt.keys()].some((k) => k.startsWith('module.sam_encoder.'))).toBe(true);
    const m = SamLST.fromCheckpoint(gpu, microCfg, ckpt, 'dataparallel.pth');
    try {
      const got = await state(m);
      const want = new Map<string, PthTensor>();
      for (const [k, v] of ckpt)
        if (!k.startsWith('module.sam_encoder.')) want.set(k.slice('module.'.length), v);
      expect(got.size).toBe(want.size);
      for (const [k, v] of want) {
        expect(got.get(k)!.dtype, k).toBe(v.dtype);
        expect(maxDiff(got.get(k)!, v), k).toBe(0);
      }
      // The host mirrors of num_batches_tracked follow the checkpoint (make_pth_variants draws
      // random counters), so training continues counting from there.
      const bns = m.namedModules().filter(([, x]) => x instanceof BatchNorm2d) as [string, BatchNorm2d][];
      expect(bns.length).toBe(20); // bn1 + 4 layers x 2 blocks x 2 + 3 downsample BNs
      for (const [n, bn] of bns)
        expect(bn.numBatchesTracked, n).toBe(want.get(`${n}.num_batches_tracked`)!.data[0]);
    } finally {
      m.dispose();
    }
  });

  test('missing, wrong-shape and foreign keys are reported and nothing leaks', () => {
    const ckpt = load('dataparallel.pth');
    const before = gpu.stats().pool.liveBytes;
    const missing = new Map(ckpt);
    missing.delete('module.sam.mask_decoder.iou_token.weight');
    expect(() => SamLST.fromCheckpoint(gpu, microCfg, missing, 'cut.pth')).toThrow(
      /cut\.pth does not match the model[\s\S]*missing \(1\): sam\.mask_decoder\.iou_token\.weight/,
    );
    const wrong = new Map(ckpt);
    const a = wrong.get('module.sam.alpha')!;
    wrong.set('module.sam.alpha', { ...a, shape: [1, 1] });
    expect(() => SamLST.fromCheckpoint(gpu, microCfg, wrong)).toThrow(
      /wrong shape \(1\): sam\.alpha \[1, 1\] \(expected \[1\]\)/,
    );
    const other = SamLST.fromCheckpoint.bind(null, gpu, smallCfg(4), ckpt, 'micro.pth');
    expect(other).toThrow(/micro\.pth does not match the model/);
    const m = new SamLST(gpu, microCfg, { init: 'none' });
    expect(() => m.loadCheckpoint(load('resnet_small.pth'))).toThrow(
      /looks like a resnet18 checkpoint.*loadOfficial/,
    );
    m.dispose();
    // Failed fromCheckpoint calls dispose their model.
    expect(gpu.stats().pool.liveBytes).toBe(before);
  });
});

describe('official SAM + torchvision ResNet18 (SAM-LST load_from)', () => {
  const exp = loadJson('pth/expected.json') as {
    adapt: { cases: Record<string, { f32_maxabs: number }> };
  };

  test('equals the oracle adapt_sam_state_dict output (grid 8 -> 4) and the ResNet weights', async () => {
    const m = new SamLST(gpu, smallCfg(4), { seed: 3 });
    try {
      const fresh = load('adapt_fresh_g4.pth');
      m.sam.loadStateDict(fresh, { source: 'adapt_fresh_g4.pth' });
      const resnet = load('resnet_small.pth');
      const r = m.loadOfficial(load('official_small.pth'), resnet, { sam: 'official_small.pth' });
      expect(r.sam.ok).toBe(true);
      expect(r.resnet?.ok).toBe(true);
      expect(r.resized).toEqual([
        'sam.image_encoder.pos_embed',
        'sam.image_encoder.blocks.1.attn.rel_pos_h',
        'sam.image_encoder.blocks.1.attn.rel_pos_w',
        'sam.image_encoder.blocks.3.attn.rel_pos_h',
        'sam.image_encoder.blocks.3.attn.rel_pos_w',
      ]);
      expect(r.dropped.length).toBeGreaterThan(0);
      const got = await state(m);
      const expected = load('adapt_expected_g4.pth');
      const tol = Math.max(4 * exp.adapt.cases.g4!.f32_maxabs, 1e-6);
      for (const [k, v] of expected) {
        const mine = got.get(`sam.${k}`);
        expect(mine, k).toBeDefined();
        expect(maxDiff(mine!, v), k).toBeLessThanOrEqual(r.resized.includes(`sam.${k}`) ? tol : 0);
      }
      for (const [k, v] of resnet) expect(maxDiff(got.get(`CNN_encoder.${k}`)!, v), k).toBe(0);
    } finally {
      m.dispose();
    }
  });

  test('an official checkpoint that lacks keys or has other shapes is refused before loading', () => {
    const m = new SamLST(gpu, smallCfg(4), { init: 'none' });
    try {
      const off = load('official_small.pth');
      const cut = new Map(off);
      cut.delete('image_encoder.neck.0.weight');
      expect(() => m.loadOfficial(cut)).toThrow(/missing \(1\): sam\.image_encoder\.neck\.0\.weight/);
      const bad = new Map(off);
      const w = bad.get('prompt_encoder.no_mask_embed.weight')!;
      bad.set('prompt_encoder.no_mask_embed.weight', { ...w, shape: [2, 4] });
      expect(() => m.loadOfficial(bad)).toThrow(
        /wrong shape \(1\): sam\.prompt_encoder\.no_mask_embed\.weight/,
      );
    } finally {
      m.dispose();
    }
  });
});
