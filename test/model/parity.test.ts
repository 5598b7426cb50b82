/**
 * End-to-end parity with the PyTorch oracle on the tiny fixture case (test/fixtures/tiny_case.*):
 * the run of make_fixtures.py (eval forward, train forward + loss + backward, BN running stats
 * after one forward, two AdamW steps) is reproduced by src/train/parity.ts, and every tensor of
 * tiny_case.safetensors is compared in one table-driven test. Tolerances are derived from the
 * manifest (see TOLERANCE_RULES in src/train/parity.ts for the justified exceptions).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Gpu } from '../../src/gpu/device.js';
import { readPth } from '../../src/io/pth.js';
import { SamLstConfig } from '../../src/nn/config.js';
import { SamLST } from '../../src/nn/sam_lst.js';
import {
  compareTensor,
  formatParityTable,
  compareAll,
  runParityCase,
  type ParityCase,
  type ParityManifest,
  type ParityRun,
} from '../../src/train/parity.js';
import { closeTestGpus, fixturesDir, testGpu, tinyCase } from '../helpers.js';

const fx = tinyCase();
const manifest = fx.manifest as unknown as ParityManifest & {
  state_dict_keys: Record<string, { shape: number[]; dtype: string }>;
};
const pthName = manifest.files.state_dict;
const parity: ParityCase = {
  manifest,
  checkpoint: readPth(new Uint8Array(readFileSync(join(fixturesDir, pthName))), pthName),
  tensor: (n) => fx.get(n),
};

let gpu: Gpu;
let run: ParityRun;
beforeAll(async () => {
  gpu = await testGpu();
  run = await runParityCase(gpu, parity);
  if (process.env.SAMLST_PARITY_TABLE) console.log(formatParityTable(compareAll(run, parity), run.checks));
});
afterAll(closeTestGpus);

describe('model structure', () => {
  test('state_dict keys, shapes and dtypes equal the oracle model (355 entries)', () => {
    const m = new SamLST(gpu, SamLstConfig.fromJson(manifest.config), { init: 'none' });
    try {
      const mine = m.stateDict();
      const want = manifest.state_dict_keys;
      expect(mine.size).toBe(355);
      expect([...mine.keys()].sort()).toEqual(Object.keys(want).sort());
      for (const [k, t] of mine) {
        expect(t.shape, k).toEqual(want[k]!.shape);
        expect(t.dtype, k).toBe(want[k]!.dtype === 'int64' ? 'i32' : 'f32');
      }
      expect(m.trainableParameters().map(([n]) => n)).toEqual(
        (manifest as unknown as { trainable_params: string[] }).trainable_params,
      );
    } finally {
      m.dispose();
    }
  });

  test('the run made its consistency checks (strict load, gradient set, BN counters)', () => {
    expect(run.checks.map((c) => c.name)).toEqual(['load', 'params_with_grad', 'num_batches_tracked']);
    for (const c of run.checks) expect(c.ok, `${c.name}: ${c.detail}`).toBe(true);
  });

  test('the table covers every group of the fixture', () => {
    const names = Object.keys(manifest.tensors);
    const count = (p: string) => names.filter((n) => n.startsWith(p)).length;
    expect(names.length).toBe(211);
    expect(count('grad.')).toBe(52);
    expect(count('actgrad.')).toBe(20);
    expect(count('train2.param.')).toBe(52);
    expect(names).toContain('actgrad.gate');
    expect(names).toContain('grad.sam.alpha');
  });
});

describe('tiny_case parity', () => {
  test.each(Object.keys(manifest.tensors))('%s', (name) => {
    const row = compareTensor(name, run.actual.get(name), parity);
    expect(
      row.ok,
      `${name}: max abs ${row.maxAbs.toExponential(3)}, max rel ${row.maxRel.toExponential(3)}, ` +
        `atol ${row.atol.toExponential(3)} (factor ${row.factor}) ${row.note}`,
    ).toBe(true);
  });
});
