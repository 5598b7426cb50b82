/**
 * Evaluation (src/eval/evaluate.ts):
 *  - with a fake model that predicts one organ everywhere, the per-case organ metrics equal
 *    metrics.caseMetrics of that prediction (special cases included: empty prediction → 0/0);
 *  - the tiny SAM-LST fixture model on a small phantom test set: a well-formed summary (8 organs,
 *    means = mean of the per-organ means), eval.json / eval.md written and consistent, overlays
 *    decodable, progress lines, the model's mode restored; limit / keepPredictions / array input.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openDataset } from '../../src/data/datasets.js';
import { phantomVolume } from '../../src/data/phantom.js';
import type { Volume } from '../../src/data/types.js';
import { evaluate, evaluateVolumes } from '../../src/eval/evaluate.js';
import type { SlicePredictor } from '../../src/eval/inference.js';
import { caseMetrics } from '../../src/eval/metrics.js';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth } from '../../src/io/pth.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import { closeTestGpus, fixturesDir, testGpu } from '../helpers.js';

function constantModel(size: number, cls: number): SlicePredictor {
  return {
    size,
    inChans: 3,
    channels: 9,
    run(_images, b) {
      const n = size * size;
      const out = new Float32Array(b * 9 * n);
      for (let i = 0; i < b; i++) out.fill(1, (i * 9 + cls) * n, (i * 9 + cls + 1) * n);
      return Promise.resolve(out);
    },
  };
}

describe('metrics of a predictable model', () => {
  test('one organ everywhere: metrics equal caseMetrics of the constant prediction', async () => {
    const vols: Volume[] = [phantomVolume(11, 4, 40), phantomVolume(12, 3, 36, 44)];
    const lines: string[] = [];
    const ev = await evaluateVolumes(constantModel(32, 5), vols, {
      inputSize: 32,
      log: (l) => lines.push(l),
    });
    expect(ev.cases.map((c) => c.name)).toEqual(['phantom11', 'phantom12']);
    expect(ev.slices).toBe(7);
    for (const [i, v] of vols.entries()) {
      const pred = new Int32Array(v.d * v.h * v.w).fill(5);
      expect(ev.cases[i]!.organs).toEqual(caseMetrics(pred, v.label, [v.d, v.h, v.w], 8));
      expect(ev.cases[i]!.organs[0]).toEqual({ dice: 0, hd95: 0 }); // spleen never predicted
      expect(ev.cases[i]!.organs[4]!.dice).toBeGreaterThan(0); // liver: the whole volume
    }
    expect(ev.summary.cases).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[1\/2\] phantom11: 4 slices 40x40 in .* s .*mean DSC .* %, mean HD95/);
    // limit and keepPredictions
    const one = await evaluateVolumes(constantModel(32, 5), vols, {
      inputSize: 32,
      limit: 1,
      keepPredictions: true,
    });
    expect(one.cases).toHaveLength(1);
    expect(one.cases[0]!.prediction).toEqual(new Int32Array(4 * 40 * 40).fill(5));
    await expect(evaluateVolumes(constantModel(32, 5), [])).rejects.toThrow(/no test volumes/);
  });
});

describe('tiny SAM-LST model on a phantom test set', () => {
  let gpu: Gpu;
  let model: SamLST;
  beforeAll(async () => {
    gpu = await testGpu();
    const ck = readPth(
      new Uint8Array(readFileSync(join(fixturesDir, 'tiny_sam_lst.pth'))),
      'tiny_sam_lst.pth',
    );
    model = SamLST.fromCheckpoint(gpu, SamLstConfig.tiny(), ck);
  });
  afterAll(() => {
    model.dispose();
    closeTestGpus();
  });

  test('evaluate() writes a well-formed report and overlays', async () => {
    const ds = await openDataset({
      kind: 'phantom',
      seed: 3,
      trainCases: 0,
      testCases: 2,
      testSize: 64,
      depth: 5,
    });
    const out = mkdtempSync(join(tmpdir(), 'samlst-eval-'));
    const lines: string[] = [];
    model.train();
    const res = await evaluate(model, ds, {
      outDir: out,
      overlayDir: join(out, 'overlays'),
      batchSize: 3,
      log: (l) => lines.push(l),
      meta: { checkpoint: 'tiny_sam_lst.pth' },
    });
    expect(model.training).toBe(true);
    const s = res.summary;
    expect(s.classes).toBe(8);
    expect(s.cases.map((c) => c.name)).toEqual(ds.test!.ids);
    expect(s.perOrgan).toHaveLength(8);
    for (const m of s.perOrgan) {
      expect(m.dice).toBeGreaterThanOrEqual(0);
      expect(m.dice).toBeLessThanOrEqual(1);
      expect(Number.isFinite(m.hd95)).toBe(true);
    }
    const meanDice = s.perOrgan.reduce((a, m) => a + m.dice, 0) / 8;
    expect(s.meanDice).toBeCloseTo(meanDice, 12);
    expect(res.slices).toBe(10);

    expect(res.files).toEqual({ json: join(out, 'eval.json'), md: join(out, 'eval.md') });
    const j = JSON.parse(readFileSync(res.files!.json, 'utf8')) as {
      numCases: number;
      mean: { dice: number; hd95: number };
      organs: { label: number; name: string; dice: number }[];
      cases: unknown[];
      meta: Record<string, unknown>;
      timing: { slices: number; cases: unknown[] };
    };
    expect(j.numCases).toBe(2);
    expect(j.mean.dice).toBeCloseTo(100 * s.meanDice, 10);
    expect(j.organs.map((o) => o.name)).toEqual([
      'spleen',
      'right kidney',
      'left kidney',
      'gallbladder',
      'liver',
      'stomach',
      'aorta',
      'pancreas',
    ]);
    expect(j.meta).toMatchObject({ checkpoint: 'tiny_sam_lst.pth', layout: 'phantom', dataset: 'phantom:3' });
    expect(j.timing.slices).toBe(10);
    const md = readFileSync(res.files!.md, 'utf8');
    expect(md).toMatch(/\| 5 \| liver \| [\d.]+ \| [\d.]+ \|/);
    expect(md).toMatch(/- checkpoint: tiny_sam_lst\.pth/);

    const ov = res.cases.flatMap((c) => c.overlays);
    expect(ov).toHaveLength(2);
    for (const f of ov) {
      expect(existsSync(f)).toBe(true);
      const png = decode(readFileSync(f));
      expect(png.width).toBeGreaterThan(2 * 64 * 4);
    }
    expect(lines[0]).toMatch(/evaluating 2 test volumes of phantom:3 \(phantom\)/);
    expect(lines.filter((l) => /^\[\d\/2\]/.test(l))).toHaveLength(2);
  });

  test('a dataset without test volumes is refused', async () => {
    const ds = await openDataset({
      kind: 'phantom',
      trainCases: 1,
      testCases: 0,
      slicesPerCase: 1,
      size: 32,
    });
    await expect(evaluate(model, ds)).rejects.toThrow(/has no test volumes/);
  });
});
