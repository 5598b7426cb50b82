/**
 * Synthetic abdominal CT phantom (src/data/phantom.ts): determinism, label ids, anatomical
 * plausibility (all 8 organs in a mid-abdomen slice, sizes, left/right and anterior/posterior
 * relations), train/test seed separation, sizes, speed.
 */
import { describe, expect, test } from 'vitest';
import { SYNAPSE_ID } from '../../src/data/labels.js';
import {
  PHANTOM_MID_T,
  phantomCase,
  phantomCaseSeeds,
  phantomSlice,
  phantomVolume,
  renderPhantomSlice,
} from '../../src/data/phantom.js';

const S = 224;
const FOV = 360; // default field of view, mm across the width
const PX = FOV / S;

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

interface Stats {
  n: number;
  cx: number;
  cy: number;
}

/** Pixel count and centroid (in mm from the image centre, x right, y down) per label id. */
function organStats(label: Int32Array, h: number, w: number): Stats[] {
  const st = Array.from({ length: 9 }, () => ({ n: 0, cx: 0, cy: 0 }));
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++) {
      const s = st[label[i * w + j]!]!;
      s.n++;
      s.cx += (j + 0.5 - w / 2) * (FOV / w);
      s.cy += (i + 0.5 - h / 2) * (FOV / w);
    }
  for (const s of st)
    if (s.n) {
      s.cx /= s.n;
      s.cy /= s.n;
    }
  return st;
}

describe('phantom', () => {
  test('is deterministic in the seed and varies between seeds', () => {
    const a = phantomSlice(7, PHANTOM_MID_T, S);
    const b = phantomSlice(7, PHANTOM_MID_T, S);
    expect(sameArray(a.image, b.image)).toBe(true);
    expect(sameArray(a.label, b.label)).toBe(true);
    const c = phantomSlice(8, PHANTOM_MID_T, S);
    let diff = 0;
    for (let k = 0; k < a.label.length; k++) if (a.label[k] !== c.label[k]) diff++;
    expect(diff).toBeGreaterThan(500); // anatomy differs, not just the noise
    expect(phantomCase(7)).toEqual(phantomCase(7));
  });

  test('images are in [0, 1] (HU window [-125, 275]) and labels are Synapse ids 0..8', () => {
    const r = renderPhantomSlice(phantomCase(1), PHANTOM_MID_T, S, S);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of r.image) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBe(0); // air outside the body
    expect(hi).toBe(1); // bone saturates the window
    expect(r.label.every((v) => v >= 0 && v <= 8)).toBe(true);
    // image = clip((HU + 125) / 400)
    for (let k = 0; k < r.hu.length; k += 97) {
      const want = Math.min(1, Math.max(0, (r.hu[k]! + 125) / 400));
      expect(r.image[k]).toBeCloseTo(want, 6);
    }
  });

  test('all 8 organs are present in a mid-abdomen slice of every case, with plausible sizes', () => {
    // cross-section areas (mm²) at the level of the pancreas and renal hila
    const range: Record<number, [number, number]> = {
      [SYNAPSE_ID.spleen]: [100, 6000],
      [SYNAPSE_ID.right_kidney]: [800, 5000],
      [SYNAPSE_ID.left_kidney]: [800, 5000],
      [SYNAPSE_ID.gallbladder]: [100, 2500],
      [SYNAPSE_ID.liver]: [2000, 25000],
      [SYNAPSE_ID.stomach]: [300, 9000],
      [SYNAPSE_ID.aorta]: [150, 800],
      [SYNAPSE_ID.pancreas]: [500, 5000],
    };
    for (const seed of [...phantomCaseSeeds('train', 12), ...phantomCaseSeeds('test', 8)]) {
      const s = phantomSlice(seed, PHANTOM_MID_T, S);
      const st = organStats(s.label, S, S);
      for (let id = 1; id <= 8; id++) {
        const area = st[id]!.n * PX * PX;
        const [lo, hi] = range[id]!;
        expect(area, `case ${seed} organ ${id} area ${area.toFixed(0)} mm²`).toBeGreaterThanOrEqual(lo);
        expect(area, `case ${seed} organ ${id} area ${area.toFixed(0)} mm²`).toBeLessThanOrEqual(hi);
      }
      const L = st[SYNAPSE_ID.liver]!;
      const Sp = st[SYNAPSE_ID.spleen]!;
      const RK = st[SYNAPSE_ID.right_kidney]!;
      const LK = st[SYNAPSE_ID.left_kidney]!;
      const Ao = st[SYNAPSE_ID.aorta]!;
      const St = st[SYNAPSE_ID.stomach]!;
      const GB = st[SYNAPSE_ID.gallbladder]!;
      const Pa = st[SYNAPSE_ID.pancreas]!;
      const why = `case ${seed}`;
      // radiological convention: patient right = image left
      expect(L.cx, why).toBeLessThan(-10);
      expect(RK.cx, why).toBeLessThan(-25);
      expect(LK.cx, why).toBeGreaterThan(25);
      expect(Sp.cx, why).toBeGreaterThan(40);
      expect(St.cx, why).toBeGreaterThan(0);
      expect(GB.cx, why).toBeLessThan(0);
      // aorta near the midline, kidneys posterior to it, stomach/gallbladder/pancreas anterior
      expect(Math.abs(Ao.cx), why).toBeLessThan(25);
      expect(RK.cy, why).toBeGreaterThan(Ao.cy);
      expect(LK.cy, why).toBeGreaterThan(Ao.cy);
      expect(Pa.cy, why).toBeLessThan(Math.min(RK.cy, LK.cy)); // (its tail curves back to the spleen)
      expect(St.cy, why).toBeLessThan(Ao.cy);
      expect(GB.cy, why).toBeLessThan(Ao.cy);
      // liver is the largest organ
      for (let id = 1; id <= 8; id++)
        if (id !== SYNAPSE_ID.liver) expect(L.n, why).toBeGreaterThan(st[id]!.n);
    }
  });

  test('the spine is posterior to the aorta (bone behind it on the midline)', () => {
    const r = renderPhantomSlice(phantomCase(3), PHANTOM_MID_T, S, S, { noise: false });
    const st = organStats(r.label, S, S);
    const ao = st[SYNAPSE_ID.aorta]!;
    const col = Math.round(S / 2 + ao.cx / PX - 0.5);
    const row0 = Math.round(S / 2 + ao.cy / PX - 0.5);
    let bone = -1;
    for (let i = row0; i < S; i++)
      if (r.hu[i * S + col]! > 300) {
        bone = i;
        break;
      }
    expect(bone).toBeGreaterThan(row0);
    expect((bone - row0) * PX).toBeLessThan(45); // vertebral body just behind the aorta
  });

  test('organs follow their craniocaudal ranges in a volume', () => {
    const v = phantomVolume(phantomCaseSeeds('test', 1)[0]!, 20, 96);
    const present = (z: number, id: number) => {
      const s = v.label.subarray(z * 96 * 96, (z + 1) * 96 * 96);
      return s.includes(id);
    };
    expect([v.d, v.h, v.w]).toEqual([20, 96, 96]);
    expect(present(0, SYNAPSE_ID.liver)).toBe(true); // liver dome at the top
    expect(present(0, SYNAPSE_ID.right_kidney)).toBe(false);
    expect(present(19, SYNAPSE_ID.liver)).toBe(false);
    expect(present(14, SYNAPSE_ID.right_kidney)).toBe(true); // kidneys extend lowest
    expect(present(14, SYNAPSE_ID.spleen)).toBe(false);
    for (let z = 0; z < 20; z++) expect(present(z, SYNAPSE_ID.aorta)).toBe(true);
  });

  test('train and test seeds are disjoint and cases differ', () => {
    for (const base of [0, 1, 1234]) {
      const tr = new Set(phantomCaseSeeds('train', 500, base));
      const te = phantomCaseSeeds('test', 500, base);
      expect(tr.size).toBe(500);
      for (const s of te) expect(tr.has(s)).toBe(false);
    }
    expect(phantomCaseSeeds('train', 3)).toEqual([0, 2, 4]);
    expect(phantomCaseSeeds('test', 3)).toEqual([1, 3, 5]);
  });

  test('any size from 64 to 512 and non-square slices; anatomy scales with the grid', () => {
    const big = phantomSlice(11, PHANTOM_MID_T, 512);
    const small = phantomSlice(11, PHANTOM_MID_T, 64);
    const areaBig = organStats(big.label, 512, 512).map((s) => s.n * (FOV / 512) ** 2);
    const areaSmall = organStats(small.label, 64, 64).map((s) => s.n * (FOV / 64) ** 2);
    for (let id = 1; id <= 8; id++) expect(areaSmall[id]!).toBeGreaterThan(0);
    const liverRatio = areaSmall[SYNAPSE_ID.liver]! / areaBig[SYNAPSE_ID.liver]!;
    expect(liverRatio).toBeGreaterThan(0.85);
    expect(liverRatio).toBeLessThan(1.15);
    const rect = renderPhantomSlice(phantomCase(11), 0.5, 160, 200);
    expect(rect.image.length).toBe(160 * 200);
    expect(() => renderPhantomSlice(phantomCase(1), 0.5, 4, 4)).toThrow(/invalid size/);
    expect(() => renderPhantomSlice(phantomCase(1), 1.5, 64, 64)).toThrow(/outside \[0, 1\]/);
  });

  test('renders a 224×224 slice in a few milliseconds', () => {
    const cases = Array.from({ length: 20 }, (_, i) => phantomCase(i));
    for (const c of cases.slice(0, 5)) renderPhantomSlice(c, 0.4, S, S); // warm up the JIT
    const t0 = performance.now();
    for (const c of cases) renderPhantomSlice(c, PHANTOM_MID_T, S, S);
    const ms = (performance.now() - t0) / cases.length;
    // typically ~3 ms; the bound leaves room for a loaded CI machine
    expect(ms).toBeLessThan(40);
  });
});
