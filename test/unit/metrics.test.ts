/**
 * DSC / HD95 (src/eval/metrics.ts) and the report (src/eval/report.ts).
 *
 * - Fixture cases from test/fixtures/metrics_cases.json, written by test/oracle/make_metrics_fixtures.py
 *   with the reference test/oracle/metrics_ref.py (MedPy 0.4.0 semantics on scipy 1.10.1 /
 *   numpy 1.24.2): DSC must match exactly, HD95 to 1e-9 relative (it matches bit for bit today).
 * - Properties (symmetry, identity, translations) and a brute-force surface-distance check
 *   (plain loops over all surface-voxel pairs) against the EDT path on small random volumes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import {
  aggregate,
  caseMetrics,
  dice,
  evaluateCases,
  hd95,
  metricPerCase,
  percentile,
  summarize,
  surface,
  surfaceDistances,
  type OrganMetric,
} from '../../src/eval/metrics.js';
import { ORGAN_NAMES, organTable, reportJson, reportMarkdown, writeReport } from '../../src/eval/report.js';
import { Rng } from '../../src/util/rng.js';

// ------------------------------------------------------------------ fixtures

interface BinaryCase {
  name: string;
  shape: number[];
  a: number[];
  b: number[];
  spacing: number[] | null;
  dc: number;
  percase: [number, number];
  hd95: number | null;
  n_ab: number;
  n_ba: number;
  d_ab?: number[];
  d_ba?: number[];
}
interface MultiCase {
  name: string;
  shape: number[];
  pred: number[];
  label: number[];
  metrics: [number, number][];
}
interface Agg {
  per_class: [number, number][];
  mean_dice: number;
  mean_hd95: number;
}
interface Fixture {
  binary: BinaryCase[];
  multi: MultiCase[];
  aggregate_multi: Agg;
  aggregate_random: Agg & { per_case: [number, number][][] };
}

const here = dirname(fileURLToPath(import.meta.url));
const fx = JSON.parse(readFileSync(join(here, '..', 'fixtures', 'metrics_cases.json'), 'utf8')) as Fixture;

const size = (shape: readonly number[]): number => shape.reduce((p, d) => p * d, 1);

/** Alternating run lengths starting with zeros → 0/1 bytes. */
function decodeRuns(runs: readonly number[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  runs.forEach((len, k) => {
    if (k % 2 === 1) out.fill(1, at, at + len);
    at += len;
  });
  expect(at).toBe(n);
  return out;
}

/** [value, length]* → Int32Array. */
function decodeRle(rle: readonly number[], n: number): Int32Array {
  const out = new Int32Array(n);
  let at = 0;
  for (let k = 0; k < rle.length; k += 2) {
    const len = rle[k + 1] as number;
    out.fill(rle[k] as number, at, at + len);
    at += len;
  }
  expect(at).toBe(n);
  return out;
}

function expectRel(got: number, want: number, rel: number, what: string): void {
  const err = Math.abs(got - want) / Math.max(1, Math.abs(want));
  if (!(err <= rel)) throw new Error(`${what}: got ${got}, want ${want} (rel err ${err})`);
}

const sum = (m: Uint8Array): number => m.reduce((s, v) => s + v, 0);
const binaryCases = fx.binary.map((c) => ({
  ...c,
  A: decodeRuns(c.a, size(c.shape)),
  B: decodeRuns(c.b, size(c.shape)),
}));

describe('metrics_ref fixtures: binary masks', () => {
  test('the fixture covers the awkward cases', () => {
    const names = fx.binary.map((c) => c.name);
    for (const n of ['empty_pred', 'empty_gt', 'both_empty', 'one_voxel_pred', 'single_slice_1x32x40'])
      expect(names).toContain(n);
    expect(fx.binary.length).toBeGreaterThanOrEqual(40);
    expect(fx.binary.filter((c) => c.spacing !== null).length).toBeGreaterThanOrEqual(4);
  });

  test.each(binaryCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const sp = c.spacing ?? undefined;
    // DSC exactly (dc and calculate_metric_percase)
    expect(dice(c.A, c.B)).toBe(c.dc);
    const pc = metricPerCase(c.A, c.B, c.shape);
    expect(pc.dice).toBe(c.percase[0]);
    expectRel(pc.hd95, c.percase[1], 1e-9, `${c.name} percase hd95`);
    // surface sizes = lengths of the directed sets
    expect(sum(surface(c.A, c.shape))).toBe(c.n_ab);
    expect(sum(surface(c.B, c.shape))).toBe(c.n_ba);
    if (c.hd95 === null) {
      expect(() => hd95(c.A, c.B, c.shape, sp)).toThrow(/empty/);
      expect(() => surfaceDistances(c.A, c.B, c.shape, sp)).toThrow(/empty/);
      return;
    }
    expectRel(hd95(c.A, c.B, c.shape, sp), c.hd95, 1e-9, `${c.name} hd95`);
    const dab = surfaceDistances(c.A, c.B, c.shape, sp);
    const dba = surfaceDistances(c.B, c.A, c.shape, sp);
    expect(dab.length).toBe(c.n_ab);
    expect(dba.length).toBe(c.n_ba);
    if (c.d_ab !== undefined && c.d_ba !== undefined) {
      c.d_ab.forEach((v, i) => expectRel(dab[i] as number, v, 1e-12, `${c.name} d_ab[${i}]`));
      c.d_ba.forEach((v, i) => expectRel(dba[i] as number, v, 1e-12, `${c.name} d_ba[${i}]`));
    }
  });

  test('HD95 and DSC are bit-identical to the reference with unit spacing', () => {
    const inexact: string[] = [];
    for (const c of binaryCases) {
      if (c.hd95 === null || c.spacing !== null) continue;
      if (hd95(c.A, c.B, c.shape) !== c.hd95) inexact.push(c.name);
    }
    expect(inexact).toEqual([]);
  });

  test('rank-1 worked example: surfaces {0,3} and {2,7}, hd95 = percentile([2,1,1,4], 95)', () => {
    const A = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    const B = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0];
    expect([...surfaceDistances(A, B, [10])]).toEqual([2, 1]);
    expect([...surfaceDistances(B, A, [10])]).toEqual([1, 4]);
    expect(hd95(A, B, [10])).toBe(2 + (4 - 2) * 0.8499999999999996);
  });
});

describe('metrics_ref fixtures: label volumes and averaging', () => {
  test.each(fx.multi.map((c) => [c.name, c] as const))('case_metrics %s', (_name, c) => {
    const n = size(c.shape);
    const pred = decodeRle(c.pred, n);
    const label = decodeRle(c.label, n);
    const got = caseMetrics(pred, label, c.shape, 8);
    expect(got.length).toBe(8);
    got.forEach((m, i) => {
      const [d, h] = c.metrics[i] as [number, number];
      expect(m.dice).toBe(d);
      expectRel(m.hd95, h, 1e-9, `${c.name} organ ${i + 1} hd95`);
      // same numbers through the binary path
      const bp = metricPerCase(
        pred.map((v) => (v === i + 1 ? 1 : 0)),
        label.map((v) => (v === i + 1 ? 1 : 0)),
        c.shape,
      );
      expect(bp).toEqual(m);
    });
  });

  test('the multi-organ cases hit every branch of calculate_metric_percase', () => {
    const all = fx.multi.flatMap((c) => c.metrics);
    expect(all.some(([d, h]) => d === 0 && h === 0)).toBe(true);
    expect(all.some(([d, h]) => d === 1 && h === 0)).toBe(true);
    expect(all.some(([d, h]) => d > 0 && d < 1 && h > 0)).toBe(true);
  });

  const toRows = (t: readonly (readonly [number, number])[]): OrganMetric[] =>
    t.map(([d, h]) => ({ dice: d, hd95: h }));

  test('aggregate of the multi-organ cases (bit-identical to metrics_ref.aggregate)', () => {
    const agg = aggregate(fx.multi.map((c) => toRows(c.metrics)));
    expect(agg.perOrgan).toEqual(toRows(fx.aggregate_multi.per_class));
    expect(agg.meanDice).toBe(fx.aggregate_multi.mean_dice);
    expect(agg.meanHd95).toBe(fx.aggregate_multi.mean_hd95);
    // and from freshly computed case metrics
    const s = evaluateCases(
      fx.multi.map((c) => ({
        name: c.name,
        prediction: decodeRle(c.pred, size(c.shape)),
        label: decodeRle(c.label, size(c.shape)),
        shape: c.shape,
      })),
    );
    expect(s.cases.map((c) => c.name)).toEqual(fx.multi.map((c) => c.name));
    expectRel(s.meanDice, fx.aggregate_multi.mean_dice, 1e-12, 'meanDice');
    expectRel(s.meanHd95, fx.aggregate_multi.mean_hd95, 1e-9, 'meanHd95');
  });

  test('aggregate of a random 12 x 8 table (numpy summation order)', () => {
    const r = fx.aggregate_random;
    const agg = aggregate(r.per_case.map(toRows));
    expect(agg.perOrgan).toEqual(toRows(r.per_class));
    expect(agg.meanDice).toBe(r.mean_dice);
    expect(agg.meanHd95).toBe(r.mean_hd95);
  });

  test('aggregate rejects ragged and empty tables', () => {
    expect(() => aggregate([])).toThrow();
    expect(() => aggregate([[{ dice: 1, hd95: 0 }], []])).toThrow(/organs/);
  });
});

// ------------------------------------------------------------------ brute force + properties

/** Brute surface: foreground voxel with a face neighbour (along a real axis) background or outside. */
function bruteSurfacePoints(m: ArrayLike<number>, shape: readonly number[]): number[][] {
  const pts: number[][] = [];
  const strides = shape.map((_, k) => size(shape.slice(k + 1)));
  for (let i = 0; i < m.length; i++) {
    if (m[i] === 0) continue;
    const idx = shape.map((d, k) => Math.floor(i / (strides[k] as number)) % d);
    let surf = false;
    for (let k = 0; k < shape.length && !surf; k++)
      for (const step of [-1, 1]) {
        const j = (idx[k] as number) + step;
        if (j < 0 || j >= (shape[k] as number) || m[i + step * (strides[k] as number)] === 0) surf = true;
      }
    if (surf) pts.push(idx);
  }
  return pts;
}

/** d(A→B) by plain loops, summed in scipy's order (axis 0 first) with (d·s)² terms. */
function bruteDirected(pa: number[][], pb: number[][], sp: readonly number[]): number[] {
  return pa.map((p) => {
    let best = Infinity;
    for (const q of pb) {
      let s = 0;
      for (let k = 0; k < p.length; k++) {
        const t = ((p[k] as number) - (q[k] as number)) * (sp[k] as number);
        s += t * t;
      }
      if (s < best) best = s;
    }
    return Math.sqrt(best);
  });
}

/** numpy.percentile(x, q) (method 'linear') by a full sort. */
function sortPercentile(x: readonly number[], q: number): number {
  const a = [...x].sort((u, v) => u - v);
  const n = a.length;
  const vi = (n - 1) * (q / 100);
  if (vi >= n - 1) return a[n - 1] as number;
  const i = Math.floor(vi);
  const lo = a[i] as number;
  const hi = a[i + 1] as number;
  const g = vi - i;
  return g >= 0.5 ? hi - (hi - lo) * (1 - g) : lo + (hi - lo) * g;
}

function randomBlobs(rng: Rng, shape: readonly number[], p: number): Uint8Array {
  const n = size(shape);
  const seeds = new Uint8Array(n);
  for (let i = 0; i < n; i++) seeds[i] = rng.next() < p ? 1 : 0;
  // one dilation with the face structure so blobs have interiors
  const out = seeds.slice();
  const strides = shape.map((_, k) => size(shape.slice(k + 1)));
  for (let i = 0; i < n; i++) {
    if (!seeds[i]) continue;
    for (let k = 0; k < shape.length; k++) {
      const st = strides[k] as number;
      const c = Math.floor(i / st) % (shape[k] as number);
      if (c > 0) out[i - st] = 1;
      if (c < (shape[k] as number) - 1) out[i + st] = 1;
    }
  }
  return out;
}

describe('EDT path against brute-force surface distances', () => {
  const rng = new Rng(1234);
  const configs: { shape: number[]; spacing?: number[] }[] = [];
  for (let t = 0; t < 40; t++) {
    const rank = t % 5 === 4 ? 2 : t % 10 === 9 ? 1 : 3;
    const shape = Array.from({ length: rank }, () => rng.int(1, rank === 1 ? 40 : rank === 2 ? 24 : 13));
    const aniso = t % 3 === 2;
    configs.push(
      aniso
        ? { shape, spacing: Array.from({ length: rank }, () => Math.round(rng.uniform(0.3, 3) * 100) / 100) }
        : { shape },
    );
  }

  test.each(configs.map((c, i) => [i, JSON.stringify(c), c] as const))('random case %i %s', (_i, _s, cfg) => {
    const { shape, spacing } = cfg;
    const sp = spacing ?? shape.map(() => 1);
    const p = [0.02, 0.08, 0.25][_i % 3] as number;
    const a = randomBlobs(rng, shape, p);
    const b = randomBlobs(rng, shape, p);
    if (!a.some((v) => v) || !b.some((v) => v)) {
      expect(() => hd95(a, b, shape, spacing)).toThrow(/empty/);
      return;
    }
    const pa = bruteSurfacePoints(a, shape);
    const pb = bruteSurfacePoints(b, shape);
    expect(sum(surface(a, shape))).toBe(pa.length);
    const wantAB = bruteDirected(pa, pb, sp);
    const wantBA = bruteDirected(pb, pa, sp);
    const gotAB = [...surfaceDistances(a, b, shape, spacing)];
    const gotBA = [...surfaceDistances(b, a, shape, spacing)];
    if (spacing === undefined) {
      expect(gotAB).toEqual(wantAB);
      expect(gotBA).toEqual(wantBA);
    } else {
      wantAB.forEach((v, i) => expectRel(gotAB[i] as number, v, 1e-12, `d_ab[${i}]`));
      wantBA.forEach((v, i) => expectRel(gotBA[i] as number, v, 1e-12, `d_ba[${i}]`));
    }
    expectRel(hd95(a, b, shape, spacing), sortPercentile([...wantAB, ...wantBA], 95), 1e-12, 'hd95');
  });

  // The EDT only visits feature columns and query slices: scattered voxels against compact blobs
  // in other slabs / corners exercise slices without features, columns without features and
  // queries outside the features' bounding box in every direction.
  test.each(Array.from({ length: 24 }, (_, i) => [i] as const))('sparse points vs slab blob %i', (i) => {
    const r = new Rng(900 + i);
    const shape = [r.int(4, 16), r.int(3, 20), r.int(3, 20)];
    const n = size(shape);
    const [D, H, W] = shape as [number, number, number];
    const a = new Uint8Array(n);
    for (let k = r.int(1, 8); k > 0; k--) a[r.int(0, n)] = 1;
    const b = new Uint8Array(n);
    const z0 = r.int(0, D);
    const z1 = Math.min(D, z0 + r.int(1, 4));
    const y0 = r.int(0, H);
    const x0 = r.int(0, W);
    for (let z = z0; z < z1; z++)
      for (let y = y0; y < Math.min(H, y0 + r.int(1, 6)); y++)
        for (let x = x0; x < Math.min(W, x0 + r.int(1, 6)); x++) b[(z * H + y) * W + x] = 1;
    const sp = i % 2 ? [1.5, 0.75, 2.25] : undefined;
    const spv = sp ?? [1, 1, 1];
    const pa = bruteSurfacePoints(a, shape);
    const pb = bruteSurfacePoints(b, shape);
    for (const [x, y, pq, pf] of [
      [a, b, pa, pb],
      [b, a, pb, pa],
    ] as const) {
      const want = bruteDirected(pq, pf, spv);
      const got = [...surfaceDistances(x, y, shape, sp)];
      expect(got.length).toBe(want.length);
      want.forEach((v, k) => expectRel(got[k] as number, v, 1e-12, `d[${k}]`));
    }
    const all = [...bruteDirected(pa, pb, spv), ...bruteDirected(pb, pa, spv)];
    expectRel(hd95(a, b, shape, sp), sortPercentile(all, 95), 1e-12, 'hd95');
  });

  test('surface() marks exactly the brute-force surface voxels (ranks 1-3)', () => {
    const r = new Rng(4321);
    for (const shape of [[7, 9, 8], [1, 12, 10], [11, 1, 1], [13, 9], [1, 17], [23]]) {
      const m = randomBlobs(r, shape, 0.15);
      const strides = shape.map((_, k) => size(shape.slice(k + 1)));
      const want = bruteSurfacePoints(m, shape).map((idx) =>
        idx.reduce((s, v, k) => s + v * (strides[k] as number), 0),
      );
      const got: number[] = [];
      surface(m, shape).forEach((v, i) => v && got.push(i));
      expect(got).toEqual(want);
    }
  });
});

describe('properties', () => {
  const S = [9, 16, 14];
  const rng = new Rng(77);

  test('HD95 is symmetric and the directed sets swap', () => {
    for (let t = 0; t < 8; t++) {
      const a = randomBlobs(rng, S, 0.03);
      const b = randomBlobs(rng, S, 0.03);
      expect(hd95(a, b, S)).toBe(hd95(b, a, S));
      expect(hd95(a, b, S, [2.5, 0.7, 0.7])).toBe(hd95(b, a, S, [2.5, 0.7, 0.7]));
      const ab = [...surfaceDistances(a, b, S)];
      const ba = [...surfaceDistances(b, a, S)];
      expect(ab.length).toBe(sum(surface(a, S)));
      expect(ba.length).toBe(sum(surface(b, S)));
      expect(hd95(a, b, S)).toBe(percentile([...ba, ...ab], 95));
    }
  });

  test('identical masks: DSC 1, HD95 0', () => {
    for (let t = 0; t < 5; t++) {
      const a = randomBlobs(rng, S, 0.05);
      expect(metricPerCase(a, a, S)).toEqual({ dice: 1, hd95: 0 });
      expect([...surfaceDistances(a, a, S)].every((d) => d === 0)).toBe(true);
    }
  });

  /** Translate a mask by an integer vector (voxels moved out of the array are dropped). */
  function translate(m: Uint8Array, shape: readonly number[], t: readonly number[]): Uint8Array {
    const [D, H, W] = shape as [number, number, number];
    const out = new Uint8Array(m.length);
    for (let z = 0; z < D; z++)
      for (let y = 0; y < H; y++)
        for (let x = 0; x < W; x++) {
          if (!m[(z * H + y) * W + x]) continue;
          const [zz, yy, xx] = [z + (t[0] as number), y + (t[1] as number), x + (t[2] as number)];
          if (zz >= 0 && zz < D && yy >= 0 && yy < H && xx >= 0 && xx < W) out[(zz * H + yy) * W + xx] = 1;
        }
    return out;
  }

  test('a single voxel or a one-voxel-thick plate translated by k gives HD95 = k', () => {
    const shape = [12, 20, 18];
    const one = new Uint8Array(size(shape));
    one[(3 * 20 + 4) * 18 + 5] = 1;
    for (const [k, ax] of [
      [1, 0],
      [4, 1],
      [7, 2],
    ] as const) {
      const t = [0, 0, 0];
      t[ax] = k;
      expect(hd95(one, translate(one, shape, t), shape)).toBe(k);
    }
    const plate = new Uint8Array(size(shape));
    for (let y = 2; y < 18; y++) for (let x = 3; x < 15; x++) plate[(2 * 20 + y) * 18 + x] = 1;
    for (const k of [1, 2, 5, 9]) {
      expect(hd95(plate, translate(plate, shape, [k, 0, 0]), shape)).toBe(k);
      expect(metricPerCase(plate, translate(plate, shape, [k, 0, 0]), shape)).toEqual({ dice: 0, hd95: k });
    }
    // with a spacing, HD95 is k times the spacing of that axis
    expect(hd95(plate, translate(plate, shape, [3, 0, 0]), shape, [2.5, 0.7, 0.7])).toBe(7.5);
  });

  test('a solid box translated by t: every directed distance <= |t|, HD95 = |t| along one axis', () => {
    const shape = [14, 22, 20];
    const box = new Uint8Array(size(shape));
    for (let z = 3; z < 9; z++)
      for (let y = 4; y < 14; y++) for (let x = 5; x < 13; x++) box[(z * 22 + y) * 20 + x] = 1;
    for (const t of [
      [1, 0, 0],
      [0, 3, 0],
      [0, 0, 2],
      [2, 3, 1],
      [-1, 2, -2],
    ]) {
      const moved = translate(box, shape, t);
      const norm = Math.hypot(...t);
      for (const d of [...surfaceDistances(box, moved, shape), ...surfaceDistances(moved, box, shape)])
        expect(d).toBeLessThanOrEqual(norm + 1e-12);
      const h = hd95(box, moved, shape);
      expect(h).toBeLessThanOrEqual(norm + 1e-12);
      if (t.filter((v) => v !== 0).length === 1) expect(h).toBe(norm);
    }
  });

  test('translated random blobs: HD95 <= |t|', () => {
    const shape = [10, 24, 24];
    for (let k = 0; k < 5; k++) {
      const a = new Uint8Array(size(shape));
      const inner = randomBlobs(rng, [6, 14, 14], 0.05);
      for (let z = 0; z < 6; z++)
        for (let y = 0; y < 14; y++)
          for (let x = 0; x < 14; x++)
            a[((z + 2) * 24 + y + 5) * 24 + x + 5] = inner[(z * 14 + y) * 14 + x] as number;
      if (!a.some((v) => v)) continue;
      const t = [rng.int(-2, 3), rng.int(-4, 5), rng.int(-4, 5)];
      expect(hd95(a, translate(a, shape, t), shape)).toBeLessThanOrEqual(Math.hypot(...t) + 1e-12);
    }
  });

  test('caseMetrics equals metricPerCase on each binarised label, also for a float label volume', () => {
    const shape = [6, 18, 15];
    const n = size(shape);
    const pred = new Int32Array(n);
    const label = new Float32Array(n);
    for (let c = 1; c <= 4; c++) {
      const a = randomBlobs(rng, shape, 0.01);
      const b = randomBlobs(rng, shape, 0.01);
      a.forEach((v, i) => v && (pred[i] = c));
      b.forEach((v, i) => v && (label[i] = c));
    }
    const got = caseMetrics(pred, label, shape, 5);
    got.forEach((m, i) => {
      const c = i + 1;
      expect(m).toEqual(
        metricPerCase(
          pred.map((v) => (v === c ? 1 : 0)),
          Int32Array.from(label, (v) => (v === c ? 1 : 0)),
          shape,
        ),
      );
    });
    expect(got[4]).toEqual({ dice: 0, hd95: 0 });
  });

  test('percentile matches a sorting implementation of numpy linear interpolation', () => {
    for (let t = 0; t < 200; t++) {
      const n = 1 + (t % 37) * (1 + (t % 4));
      const x = Array.from({ length: n }, () => (t % 2 ? rng.int(0, 6) : rng.uniform(-5, 5)));
      for (const q of [0, 5, 37.5, 50, 95, 99, 100]) expect(percentile(x, q)).toBe(sortPercentile(x, q));
    }
    expect(percentile([1, 1, 2, 4], 95)).toBe(3.6999999999999993);
    expect(() => percentile([], 95)).toThrow();
  });

  test('bad inputs', () => {
    expect(() => hd95([1, 0], [1, 0, 0], [2])).toThrow(/fill/);
    expect(() => hd95([1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 2, 2])).toThrow(/rank/);
    expect(() => hd95([1, 0], [0, 1], [2], [0])).toThrow(/spacing/);
    expect(() => hd95([1, 0], [0, 1], [2], [1, 1])).toThrow(/spacing/);
    expect(() => caseMetrics([1, 0], [0, 1], [3])).toThrow(/fill/);
  });
});

// ------------------------------------------------------------------ report

describe('report', () => {
  const perCase = [
    Array.from({ length: 8 }, (_, i) => ({ dice: 0.5 + i / 20, hd95: i })),
    Array.from({ length: 8 }, (_, i) => ({ dice: 0.7 - i / 40, hd95: 2 * i + 1 })),
  ];
  const summary = summarize([
    { name: 'case0008', organs: perCase[0] as OrganMetric[] },
    { name: 'case0022', organs: perCase[1] as OrganMetric[] },
  ]);

  test('organ names and the per-organ table (DSC x100)', () => {
    expect(ORGAN_NAMES).toEqual([
      'spleen',
      'right kidney',
      'left kidney',
      'gallbladder',
      'liver',
      'stomach',
      'aorta',
      'pancreas',
    ]);
    const t = organTable(summary);
    expect(t.map((r) => r.label)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(t[4]?.name).toBe('liver');
    expectRel(t[0]?.dice as number, 60, 1e-12, 'spleen dice');
    expect(t[3]?.hd95).toBe((3 + 7) / 2);
  });

  test('JSON and Markdown', () => {
    const j = JSON.parse(reportJson(summary)) as {
      numCases: number;
      mean: { dice: number; hd95: number };
      organs: { name: string; dice: number }[];
      cases: { name: string }[];
    };
    expect(j.numCases).toBe(2);
    expect(j.mean.dice).toBe(100 * summary.meanDice);
    expect(j.mean.hd95).toBe(summary.meanHd95);
    expect(j.organs.map((o) => o.name)).toEqual(ORGAN_NAMES);
    expect(j.cases.map((c) => c.name)).toEqual(['case0008', 'case0022']);
    const md = reportMarkdown(summary, { title: 'test run' });
    expect(md).toContain('# test run');
    expect(md).toContain('| 1 | spleen | 60.00 | 0.50 |');
    expect(md).toContain('| 8 | pancreas |');
    expect(md).toContain(`**${(100 * summary.meanDice).toFixed(2)}**`);
    expect(md).toContain('| case0022 |');
    expect(reportMarkdown(summary, { perCase: false })).not.toContain('case0022');
  });

  test('writeReport writes <base>.json and <base>.md', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metrics-report-'));
    try {
      const paths = writeReport(summary, join(dir, 'sub', 'eval'));
      expect(JSON.parse(readFileSync(paths.json, 'utf8'))).toEqual(JSON.parse(reportJson(summary)));
      expect(readFileSync(paths.md, 'utf8')).toBe(reportMarkdown(summary));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
