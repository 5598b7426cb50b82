/**
 * Checkpoint → engine names (remap.ts), the load report, and SAM-LST's adaptation of the official
 * SAM checkpoint (adapt.ts) against the oracle's adapt_sam_state_dict, whose outputs
 * make_pth_variants.py stored in test/fixtures/pth (no GPU, no python at test time).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import {
  adaptSamStateDict,
  DROPPED_SAM_KEYS,
  resizeBilinearHWC,
  type SamAdaptConfig,
} from '../../src/io/adapt.js';
import { readPth, type PthTensor } from '../../src/io/pth.js';
import {
  assertLoadReport,
  detectCheckpointKind,
  formatLoadReport,
  loadReport,
  remapCheckpoint,
} from '../../src/io/remap.js';
import type { HostTensor } from '../../src/tensor/host.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const pthDir = join(fixtures, 'pth');
const load = (name: string, dir = pthDir) => readPth(new Uint8Array(readFileSync(join(dir, name))), name);

interface AdaptCase {
  img_size: number;
  patch_size: number;
  grid: number;
  global_attn_indexes: number[];
  f32_maxabs: number;
  substring_rule_keys: string[];
  index_rule_keys: string[];
  fresh?: string;
  expected: string;
  expected_prefix?: string;
}
const expected = JSON.parse(readFileSync(join(pthDir, 'expected.json'), 'utf8')) as {
  files: Record<string, { tensors: Record<string, { shape: number[] }>; raw_keys?: string[] }>;
  adapt: { official: string; official_grid: number; cases: Record<string, AdaptCase>; dropped: string[] };
};
const tinyCase = JSON.parse(readFileSync(join(fixtures, 'tiny_case.json'), 'utf8')) as {
  state_dict_keys: Record<string, { shape: number[] }>;
};
const shapesOf = (r: Record<string, { shape: number[] }>) =>
  new Map(Object.entries(r).map(([k, v]) => [k, v.shape] as [string, number[]]));

function maxAbsDiff(a: HostTensor, b: HostTensor): number {
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
  return m;
}

// ------------------------------------------------------------------ remap + report

describe('key remapping', () => {
  test('SAM-LST DataParallel checkpoint: strip module., skip the sam_encoder alias', () => {
    const raw = load('dataparallel.pth');
    const r = remapCheckpoint(raw);
    expect(r.kind).toBe('sam-lst');
    const want = expected.files['dataparallel.pth']!.tensors;
    expect([...r.map.keys()]).toEqual(Object.keys(want));
    expect(r.skipped.length).toBeGreaterThan(0);
    expect(r.skipped.every((k) => k.startsWith('module.sam_encoder.'))).toBe(true);
    expect(r.unmatched).toEqual([]);
    expect(r.map.get('sam.alpha')).toBe(raw.get('module.sam.alpha'));
    const rep = loadReport(r.map, shapesOf(want));
    expect(rep).toMatchObject({ ok: true, missing: [], unexpected: [], wrongShape: [] });
    expect(rep.matched).toBe(Object.keys(want).length);
  });

  test('tiny_sam_lst.pth is already in engine names and matches the model exactly', () => {
    const r = remapCheckpoint(load('tiny_sam_lst.pth', fixtures));
    expect(r.kind).toBe('sam-lst');
    expect(r.skipped).toEqual([]);
    const rep = loadReport(r.map, shapesOf(tinyCase.state_dict_keys));
    expect(rep.ok).toBe(true);
    expect(rep.matched).toBe(355);
    expect(() => assertLoadReport(rep)).not.toThrow();
  });

  test('official SAM keys go under sam.; torchvision resnet18 keys under CNN_encoder.', () => {
    const off = remapCheckpoint(load('official_small.pth'));
    expect(off.kind).toBe('sam-official');
    expect([...off.map.keys()]).toEqual(
      Object.keys(expected.files['official_small.pth']!.tensors).map((k) => `sam.${k}`),
    );
    const res = remapCheckpoint(load('resnet_small.pth'));
    expect(res.kind).toBe('resnet18');
    const want = Object.entries(expected.files['dataparallel.pth']!.tensors).filter(([k]) =>
      k.startsWith('CNN_encoder.'),
    );
    expect(loadReport(res.map, shapesOf(Object.fromEntries(want))).ok).toBe(true);
    // the side network's values are the micro model's (same generator run)
    const dp = remapCheckpoint(load('dataparallel.pth')).map;
    expect(res.map.get('CNN_encoder.conv1.weight')!.shape).toEqual(dp.get('CNN_encoder.conv1.weight')!.shape);
  });

  test('explicit kinds, nested module. prefixes, unmatched keys, collisions and unknown checkpoints', () => {
    const t = { shape: [1] };
    const m = new Map([
      ['module.module.conv1.weight', t],
      ['layer1.0.conv1.weight', t],
      ['extra.thing', t],
    ]);
    const r = remapCheckpoint(m, 'resnet18');
    expect([...r.map.keys()]).toEqual([
      'CNN_encoder.conv1.weight',
      'CNN_encoder.layer1.0.conv1.weight',
      'extra.thing',
    ]);
    expect(r.unmatched).toEqual(['extra.thing']);
    expect(detectCheckpointKind(m.keys())).toBe('resnet18');
    expect(() =>
      remapCheckpoint(
        new Map([
          ['module.sam.alpha', t],
          ['sam.alpha', t],
        ]),
        'auto',
        'dup.pth',
      ),
    ).toThrow("dup.pth: keys 'module.sam.alpha' and 'sam.alpha' both map to 'sam.alpha'");
    expect(() => detectCheckpointKind(['0.weight', '0.bias'])).toThrow('first keys: 0.weight, 0.bias');
  });

  test('loadReport lists missing, unexpected and wrong-shape keys', () => {
    const ck = new Map([
      ['a', { shape: [2, 3] }],
      ['b', { shape: [4] }],
      ['extra', { shape: [1] }],
    ]);
    const rep = loadReport(ck, { a: [2, 3], b: [5], c: [1] });
    expect(rep).toEqual({
      missing: ['c'],
      unexpected: ['extra'],
      wrongShape: [{ key: 'b', got: [4], want: [5] }],
      matched: 1,
      ok: false,
    });
    const text = formatLoadReport(rep);
    expect(text).toContain('1 keys match');
    expect(text).toContain('missing (1): c');
    expect(text).toContain('unexpected (1): extra');
    expect(text).toContain('wrong shape (1): b [4] (expected [5])');
    expect(() => assertLoadReport(rep, 'x.pth')).toThrow('x.pth does not match the model');
  });
});

// ------------------------------------------------------------------ adaptation

describe('SAM checkpoint adaptation (oracle adapt_sam_state_dict)', () => {
  const official = load(expected.adapt.official);
  const cfgOf = (c: AdaptCase): SamAdaptConfig => ({
    imgSize: c.img_size,
    patchSize: c.patch_size,
    globalAttnIndexes: c.global_attn_indexes,
  });
  const g4 = expected.adapt.cases.g4!;
  // f64 math rounded to f32 vs the oracle's f64 result rounded to f32: at most an ulp or so
  const tol = (t: HostTensor) => 2 ** -22 * Math.max(1, ...Array.from(t.data, Math.abs));

  test('with the fresh model state: every tensor equals the oracle output (grid 8 → 4)', () => {
    const fresh = load(g4.fresh!);
    const want = load(g4.expected);
    const r = adaptSamStateDict(official, cfgOf(g4), { fresh, source: 'official_small.pth' });
    expect([...r.map.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, w] of want) {
      const got = r.map.get(k)!;
      if (r.resized.includes(k)) expect({ k, d: maxAbsDiff(got, w) <= tol(w) }).toEqual({ k, d: true });
      else expect({ k, data: got.data }).toEqual({ k, data: w.data });
    }
    // the three head groups keep the fresh init, everything else comes from the checkpoint
    for (const k of r.dropped) expect(DROPPED_SAM_KEYS.some((s) => k.includes(s))).toBe(true);
    expect(r.dropped.length).toBeGreaterThan(0);
    expect(r.map.get('mask_decoder.mask_tokens.weight')).toBe(fresh.get('mask_decoder.mask_tokens.weight'));
    expect(r.map.get('image_encoder.blocks.0.attn.rel_pos_h')).toBe(
      official.get('image_encoder.blocks.0.attn.rel_pos_h'),
    );
    expect(r.ignored).toEqual([]);
    expect(r.resized.sort()).toEqual(['image_encoder.pos_embed', ...g4.index_rule_keys].sort());
  });

  test('pos_embed 8 → 4 is 2×2 average pooling; global tables become (2T−1, hd); window tables untouched', () => {
    const r = adaptSamStateDict(official, cfgOf(g4));
    const pe = official.get('image_encoder.pos_embed')!;
    const out = r.map.get('image_encoder.pos_embed')!;
    const C = pe.shape[3]!;
    expect(out.shape).toEqual([1, 4, 4, C]);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++)
        for (let c = 0; c < C; c++) {
          const at = (yy: number, xx: number) => pe.data[(yy * 8 + xx) * C + c]!;
          const avg =
            (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
          expect(out.data[(y * 4 + x) * C + c]).toBe(Math.fround(avg));
        }
    for (const i of [1, 3])
      expect(r.map.get(`image_encoder.blocks.${i}.attn.rel_pos_w`)!.shape).toEqual([7, 4]);
    for (const i of [0, 2])
      expect(r.map.get(`image_encoder.blocks.${i}.attn.rel_pos_h`)!.shape).toEqual([3, 4]);
    // without `fresh`: the official map minus the dropped heads
    const kept = [...official.keys()].filter((k) => !DROPPED_SAM_KEYS.some((s) => k.includes(s)));
    expect([...r.map.keys()]).toEqual(kept);
    expect(r.dropped.sort()).toEqual([...official.keys()].filter((k) => !kept.includes(k)).sort());
  });

  test.each(['g5', 'g11'])(
    'resized tensors equal the oracle (%s: non-integer ratio / upsampling)',
    (name) => {
      const c = expected.adapt.cases[name]!;
      const want = load(c.expected);
      const r = adaptSamStateDict(official, cfgOf(c));
      for (const k of ['image_encoder.pos_embed', ...c.index_rule_keys]) {
        const w = want.get(`${c.expected_prefix}${k}`)!;
        expect({ k, d: maxAbsDiff(r.map.get(k)!, w) <= tol(w) }).toEqual({ k, d: true });
      }
      expect(r.map.get('image_encoder.pos_embed')!.shape).toEqual([1, c.grid, c.grid, 8]);
    },
  );

  test('the same grid leaves everything as is; after remapping the prefix option works', () => {
    const same = adaptSamStateDict(official, { imgSize: 32, patchSize: 4, globalAttnIndexes: [1, 3] });
    expect(same.resized).toEqual([]);
    const pre = remapCheckpoint(official).map as Map<string, PthTensor>;
    const a = adaptSamStateDict(pre, cfgOf(g4), { prefix: 'sam.' });
    const b = adaptSamStateDict(official, cfgOf(g4));
    expect(a.map.get('sam.image_encoder.pos_embed')!.data).toEqual(
      b.map.get('image_encoder.pos_embed')!.data,
    );
    expect(a.resized).toEqual(b.resized.map((k) => `sam.${k}`));
  });

  test('then the load report against the SAM-LST model is clean except the fresh heads', () => {
    const fresh = load(g4.fresh!);
    const r = adaptSamStateDict(official, cfgOf(g4));
    const model = new Map([...fresh].map(([k, v]) => [`sam.${k}`, v.shape] as [string, number[]]));
    const rep = loadReport(remapCheckpoint(r.map, 'sam-official').map, model);
    expect(rep.unexpected).toEqual([]);
    expect(rep.wrongShape).toEqual([]);
    expect(rep.missing.every((k) => k === 'sam.alpha' || DROPPED_SAM_KEYS.some((s) => k.includes(s)))).toBe(
      true,
    );
    // before adaptation, pos_embed, the global tables and the 4-token heads do not fit
    const raw = loadReport(remapCheckpoint(official).map, model);
    expect(raw.wrongShape.map((w) => w.key)).toEqual(
      expect.arrayContaining([
        'sam.image_encoder.pos_embed',
        ...g4.index_rule_keys.map((k) => `sam.${k}`),
        'sam.mask_decoder.mask_tokens.weight',
      ]),
    );
  });

  test("global blocks come from the config: SAM-LST's substring rule agrees only for ViT-B", () => {
    const substring = (keys: string[]) =>
      keys.filter((k) => ['2', '5', '8', '11'].some((s) => k.includes(s)));
    const relKeys = (depth: number) =>
      Array.from({ length: depth }, (_, i) =>
        ['h', 'w'].map((a) => `image_encoder.blocks.${i}.attn.rel_pos_${a}`),
      ).flat();
    const byIndex = (idx: number[]) =>
      idx.flatMap((i) => ['h', 'w'].map((a) => `image_encoder.blocks.${i}.attn.rel_pos_${a}`));
    expect(substring(relKeys(12))).toEqual(byIndex([2, 5, 8, 11])); // ViT-B: same keys
    expect(substring(relKeys(24))).not.toEqual(byIndex([5, 11, 17, 23])); // ViT-L: would differ
    // the small test config (global 1, 3): the substring rule picks block 2 (a window block)
    expect(substring(relKeys(4))).toEqual(g4.substring_rule_keys);
    expect(g4.index_rule_keys).toEqual(byIndex([1, 3]));
    // and the oracle resized the index-rule keys, which is what adapt.ts does
    const r = adaptSamStateDict(official, cfgOf(g4));
    expect(r.map.get('image_encoder.blocks.2.attn.rel_pos_h')!.shape).toEqual([3, 4]);
    expect(r.map.get('image_encoder.blocks.1.attn.rel_pos_h')!.shape).toEqual([7, 4]);
  });

  test('resizeBilinearHWC: scale 1 copies, clamps at the borders like PyTorch', () => {
    const src = [1, 2, 3, 4, 5, 6];
    expect(Array.from(resizeBilinearHWC(src, 2, 3, 1, 2, 3))).toEqual(src);
    // 1-D 2 → 4 along rows (align_corners=False): src = (o + 0.5) / 2 - 0.5 clamped at 0
    expect(Array.from(resizeBilinearHWC([0, 4], 2, 1, 1, 4, 1))).toEqual([0, 1, 3, 4]);
  });

  test('errors name the checkpoint and the key', () => {
    const noPe = new Map([...official].filter(([k]) => k !== 'image_encoder.pos_embed'));
    expect(() => adaptSamStateDict(noPe, cfgOf(g4), { source: 'x.pth' })).toThrow(
      "x.pth: no 'image_encoder.pos_embed'",
    );
    const noRel = new Map([...official].filter(([k]) => k !== 'image_encoder.blocks.3.attn.rel_pos_w'));
    expect(() => adaptSamStateDict(noRel, cfgOf(g4))).toThrow(
      "no 'image_encoder.blocks.3.attn.rel_pos_w' (global block 3)",
    );
    expect(() => adaptSamStateDict(official, { imgSize: 30, patchSize: 4, globalAttnIndexes: [] })).toThrow(
      'not a multiple',
    );
  });
});
