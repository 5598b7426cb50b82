/**
 * Synthetic abdominal CT phantoms with the 8 Synapse organs under their label ids (1 spleen,
 * 2 right kidney, 3 left kidney, 4 gallbladder, 5 liver, 6 stomach, 7 aorta, 8 pancreas).
 *
 * Geometry is in millimetres in the axial plane, origin at the image centre, x toward image right,
 * y toward image bottom, in radiological convention: image left = patient right, image top =
 * anterior. So the liver sits on the image left, spleen and stomach on the image right, kidneys
 * posterior beside the spine, aorta just anterior (and slightly to the patient's left) of the
 * vertebral body, IVC to its right, pancreas across the front of the aorta toward the splenic
 * hilum, gallbladder under the anterior liver. The craniocaudal position is t ∈ [0, 1]
 * (0 = liver dome, 1 = iliac crest); each organ occupies a t-range with a superellipsoidal
 * cross-section profile, smooth harmonic boundary deformations that drift with t, and per-case
 * random size, position, rotation, HU and noise. The body outline has subcutaneous fat, an
 * abdominal-wall muscle layer, mesenteric fat with bowel loops (some gas), paraspinal and psoas
 * muscles, a vertebra (body, canal, posterior elements) and ribs in the upper slices.
 *
 * HU values are windowed to [-125, 275] and scaled to [0, 1] like the Synapse preprocessing
 * (spec §12). Everything is deterministic in the case seed; `phantomCaseSeeds` gives disjoint
 * train/test seeds. A 224×224 slice renders in a few milliseconds.
 */
import { Rng } from '../util/rng.js';
import type { Slice, Volume } from './types.js';

// ------------------------------------------------------------------------ hashing / seeds

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function hash(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = mix32((h ^ mix32(p >>> 0)) + 0x6d2b79f5);
  return h >>> 0;
}

/**
 * Case seeds for a split: train seeds are even offsets from a base, test seeds odd, so the two
 * sets never intersect for the same base.
 */
export function phantomCaseSeeds(split: 'train' | 'test', n: number, base = 0): number[] {
  const k = Math.imul(base >>> 0, 1000003) >>> 0;
  return Array.from({ length: n }, (_, i) => (k + 2 * i + (split === 'test' ? 1 : 0)) >>> 0);
}

/** A craniocaudal position where all 8 organs are present in every case (mid abdomen). */
export const PHANTOM_MID_T = 0.47;

// ------------------------------------------------------------------------ shapes

interface Ellipse {
  kind: 'ellipse';
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  /** rotation (radians) of the rx axis from image x toward image y. */
  rot: number;
  /** harmonic boundary deformation: [a2, b2, a3, b3, a4, b4] (all 0 for a plain ellipse). */
  harm: number[];
  /** keep only y <= clipY (flat back of the body, gas level in the stomach). */
  clipY: number;
}

interface Capsule {
  kind: 'capsule';
  /** polyline points [x0, y0, x1, y1, ...] */
  pts: number[];
  /** radius at each point */
  rad: number[];
}

type Shape = Ellipse | Capsule;

/** Body compartments, so organs stay inside the abdominal cavity. */
const REGION_FAT = 1;
const REGION_WALL = 2;
const REGION_CAVITY = 3;

interface Paint {
  shape: Shape;
  hu: number;
  /** label to write (0 clears organ labels), or −1 to keep the label. */
  label: number;
  /** paint only where the current label equals this (−1: anywhere). */
  onlyLabel: number;
  /** paint only where the body region is at least this (0: anywhere, 2: wall or cavity, 3: cavity). */
  onlyRegion: number;
  /** region to record where painted (0: keep). */
  setRegion: number;
}

function paint(shape: Shape, hu: number, label = -1, onlyLabel = -1, onlyRegion = 0, setRegion = 0): Paint {
  return { shape, hu, label, onlyLabel, onlyRegion, setRegion };
}

const NO_HARM = [0, 0, 0, 0, 0, 0];

function ellipse(
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  rot = 0,
  harm: number[] = NO_HARM,
  clipY = Infinity,
): Ellipse {
  return { kind: 'ellipse', cx, cy, rx, ry, rot, harm, clipY };
}

function harmSum(h: number[]): number {
  let s = 0;
  for (const a of h) s += Math.abs(a);
  return s;
}

/** Half-extents (x, y) of a shape's bounding box, and its centre. */
function extent(s: Shape): [number, number, number, number] {
  if (s.kind === 'ellipse') {
    const k = 1 + harmSum(s.harm);
    const c = Math.cos(s.rot);
    const sn = Math.sin(s.rot);
    return [s.cx, s.cy, Math.hypot(s.rx * c, s.ry * sn) * k, Math.hypot(s.rx * sn, s.ry * c) * k];
  }
  let mx = Infinity;
  let Mx = -Infinity;
  let my = Infinity;
  let My = -Infinity;
  for (let i = 0; i < s.pts.length; i += 2) {
    const r = s.rad[i / 2]!;
    mx = Math.min(mx, s.pts[i]! - r);
    Mx = Math.max(Mx, s.pts[i]! + r);
    my = Math.min(my, s.pts[i + 1]! - r);
    My = Math.max(My, s.pts[i + 1]! + r);
  }
  return [(mx + Mx) / 2, (my + My) / 2, (Mx - mx) / 2, (My - my) / 2];
}

function insideCapsule(s: Capsule, x: number, y: number): boolean {
  const p = s.pts;
  for (let i = 0; i + 3 < p.length; i += 2) {
    const ax = p[i]!;
    const ay = p[i + 1]!;
    const bx = p[i + 2]!;
    const by = p[i + 3]!;
    const vx = bx - ax;
    const vy = by - ay;
    const len2 = vx * vx + vy * vy;
    let t = len2 > 0 ? ((x - ax) * vx + (y - ay) * vy) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const r = s.rad[i / 2]! * (1 - t) + s.rad[i / 2 + 1]! * t;
    const dx = x - (ax + t * vx);
    const dy = y - (ay + t * vy);
    if (dx * dx + dy * dy < r * r) return true;
  }
  return false;
}

// ------------------------------------------------------------------------ case anatomy

/** Per-organ craniocaudal range and base geometry. */
interface OrganSpec {
  t0: number;
  t1: number;
  /** superellipsoid exponent of the craniocaudal profile */
  q: number;
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  rot: number;
  /** harmonics and their drift with t */
  harm: number[];
  drift: number[];
  phase: number;
  /** centre drift per unit t */
  dcx: number;
  dcy: number;
  hu: number;
}

/** All random parameters of one phantom case. */
export interface PhantomCase {
  seed: number;
  /** body half-width / half-height (mm) */
  bodyA: number;
  bodyB: number;
  fat: number;
  wall: number;
  /** global in-plane rotation (rad) and shift (mm) */
  rot: number;
  tx: number;
  ty: number;
  spineY: number;
  spineR: number;
  organs: {
    liver: OrganSpec;
    liverLeft: OrganSpec;
    stomach: OrganSpec;
    spleen: OrganSpec;
    kidneyR: OrganSpec;
    kidneyL: OrganSpec;
    gallbladder: OrganSpec;
    pancreas: OrganSpec;
  };
  pancreasPts: number[];
  pancreasRad: number[];
  aorta: { cx: number; cy: number; r: number; hu: number };
  ivc: { cx: number; cy: number; rx: number; ry: number; hu: number };
  stomachGas: number;
  bowel: { x: number; y: number; r: number; gas: boolean; t0: number; t1: number }[];
  liverVessels: { x: number; y: number; r: number }[];
  huFat: number;
  huMuscle: number;
  noiseSd: number;
  textureSd: number;
}

function organ(
  r: Rng,
  base: {
    t: [number, number];
    c: [number, number];
    rad: [number, number];
    rot: number;
    hu: number;
    q?: number;
    d?: [number, number];
  },
  sx: number,
  sy: number,
  jitter = 1,
): OrganSpec {
  const u = (lo: number, hi: number) => r.uniform(lo, hi);
  const harm = Array.from({ length: 6 }, () => u(-0.07, 0.07) * jitter);
  const drift = Array.from({ length: 6 }, () => u(-0.05, 0.05) * jitter);
  const s = u(0.88, 1.12);
  return {
    t0: base.t[0] + u(-0.025, 0.025),
    t1: base.t[1] + u(-0.025, 0.025),
    q: base.q ?? 2.6,
    cx: (base.c[0] + u(-7, 7)) * sx,
    cy: (base.c[1] + u(-6, 6)) * sy,
    rx: base.rad[0] * s * u(0.92, 1.08) * sx,
    ry: base.rad[1] * s * u(0.92, 1.08) * sy,
    rot: base.rot + u(-0.15, 0.15),
    harm,
    drift,
    phase: u(0, 2 * Math.PI),
    dcx: (base.d?.[0] ?? 0) * sx,
    dcy: (base.d?.[1] ?? 0) * sy,
    hu: base.hu + u(-12, 12),
  };
}

/** Draw the random anatomy of case `seed`. */
export function phantomCase(seed: number): PhantomCase {
  const r = new Rng(hash(seed, 0xa11ce));
  const u = (lo: number, hi: number) => r.uniform(lo, hi);
  const bodyA = 150 * u(0.88, 1.1);
  const bodyB = 108 * u(0.88, 1.12);
  const sx = bodyA / 150;
  const sy = bodyB / 108;
  const fat = u(10, 28);
  const wall = u(6, 12);
  // vertebral body centre ~50 mm in front of the back muscles' skin line
  const spineY = 0.86 * bodyB - fat - 50 * sy;
  const spineR = 18 * u(0.9, 1.1);
  const sp = spineY / sy; // posterior organs are placed relative to the spine
  const phase = u(0, 1); // contrast timing: 0 = portal venous, 1 = late arterial
  const aortaHu = 150 + 90 * phase + u(-15, 15);
  const ay = spineY - spineR - 14 * u(0.85, 1.15); // aorta just anterior to the vertebral body
  const stY = Math.min(-30, ay / sy - 22); // stomach stays anterior to the aorta and pancreas
  const organs = {
    liver: organ(
      r,
      { t: [0.0, 0.56], c: [-55, -10], rad: [88, 80], rot: 0.25, hu: 105, q: 1.8, d: [-15, 8] },
      sx,
      sy,
    ),
    liverLeft: organ(
      r,
      { t: [0.04, 0.4], c: [10, -48], rad: [52, 24], rot: -0.1, hu: 105, q: 2.4, d: [-20, 0] },
      sx,
      sy,
    ),
    stomach: organ(
      r,
      { t: [0.05, 0.53], c: [48, stY], rad: [50, 36], rot: -0.5, hu: 60, q: 2.4, d: [-25, 6] },
      sx,
      sy,
    ),
    spleen: organ(
      r,
      { t: [0.1, 0.53], c: [84, sp - 14], rad: [22, 50], rot: -0.6, hu: 112, q: 2.4, d: [0, 8] },
      sx,
      sy,
    ),
    kidneyR: organ(
      r,
      { t: [0.39, 0.84], c: [-60, sp - 2], rad: [26, 33], rot: 0.45, hu: 175, q: 2.4 },
      sx,
      sy,
      0.6,
    ),
    kidneyL: organ(
      r,
      { t: [0.33, 0.78], c: [60, sp - 4], rad: [26, 33], rot: -0.45, hu: 175, q: 2.4 },
      sx,
      sy,
      0.6,
    ),
    gallbladder: organ(
      r,
      { t: [0.33, 0.6], c: [-42, -42], rad: [17, 26], rot: 0.5, hu: 8, q: 2.2 },
      sx,
      sy,
      0.5,
    ),
    pancreas: organ(r, { t: [0.38, 0.61], c: [0, 0], rad: [1, 1], rot: 0, hu: 90, q: 3 }, sx, sy),
  };
  const aorta = { cx: 10 * sx + u(-4, 4), cy: ay, r: 11 * u(0.85, 1.2), hu: aortaHu };
  const ivc = {
    cx: -24 * sx + u(-4, 4),
    cy: ay + u(-4, 4),
    rx: 13 * u(0.8, 1.2),
    ry: 10 * u(0.8, 1.2),
    hu: aortaHu - 30,
  };
  // pancreas: head (patient right, near duodenum) → neck (in front of aorta) → body → tail at hilum
  const py = ay - 24 * u(0.9, 1.1);
  const pancreasPts = [
    -32 * sx + u(-5, 5),
    py + 10 + u(-5, 5),
    -2 * sx + u(-4, 4),
    py + u(-3, 3),
    38 * sx + u(-5, 5),
    py - 2 + u(-5, 5),
    70 * sx + u(-6, 6),
    py + 22 * sy + u(-6, 6),
  ];
  const pancreasRad = [15 * u(0.85, 1.15), 10 * u(0.85, 1.15), 11 * u(0.85, 1.15), 8 * u(0.85, 1.15)];
  const bowel: PhantomCase['bowel'] = [];
  const nb = r.int(10, 18);
  for (let i = 0; i < nb; i++) {
    const t0 = u(0.2, 0.9);
    bowel.push({
      x: u(-0.75, 0.75) * bodyA,
      y: u(-0.7, 0.35) * bodyB,
      r: u(7, 18),
      gas: r.next() < 0.3,
      t0,
      t1: t0 + u(0.1, 0.4),
    });
  }
  const liverVessels = Array.from({ length: r.int(4, 9) }, () => ({
    x: organs.liver.cx + u(-0.6, 0.6) * organs.liver.rx,
    y: organs.liver.cy + u(-0.6, 0.6) * organs.liver.ry,
    r: u(2.5, 6),
  }));
  return {
    seed,
    bodyA,
    bodyB,
    fat,
    wall,
    rot: u(-0.1, 0.1),
    tx: u(-8, 8),
    ty: u(-6, 6),
    spineY,
    spineR,
    organs,
    pancreasPts,
    pancreasRad,
    aorta,
    ivc,
    stomachGas: u(0, 1),
    bowel,
    liverVessels,
    huFat: -100 + u(-10, 10),
    huMuscle: 50 + u(-8, 8),
    noiseSd: u(6, 16),
    textureSd: u(3, 8),
  };
}

/** Cross-section scale of an organ at t (0 outside its range). */
function profile(o: OrganSpec, t: number): number {
  if (t <= o.t0 || t >= o.t1) return 0;
  const s = (2 * (t - o.t0)) / (o.t1 - o.t0) - 1; // −1..1
  return Math.pow(1 - Math.pow(Math.abs(s), o.q), 1 / o.q);
}

function organShape(o: OrganSpec, t: number, minScale = 0.12): Ellipse | null {
  const p = profile(o, t);
  if (p < minScale) return null;
  const tm = (t - (o.t0 + o.t1) / 2) / (o.t1 - o.t0);
  const harm = o.harm.map((a, i) => a + o.drift[i]! * Math.sin(2 * Math.PI * t * 1.7 + o.phase + i));
  return ellipse(o.cx + o.dcx * tm, o.cy + o.dcy * tm, o.rx * p, o.ry * p, o.rot, harm);
}

/** The paint list for one axial position. */
function slicePaints(c: PhantomCase, t: number): Paint[] {
  const P: Paint[] = [];
  const A = c.bodyA * (0.94 + 0.08 * t);
  const B = c.bodyB * (0.95 + 0.06 * t);
  const back = B * 0.86;
  const bodyHarm = [0.03, 0, 0, 0, -0.015, 0];
  const body = (shrink: number): Ellipse => ellipse(0, 0, A - shrink, B - shrink, 0, bodyHarm, back - shrink);
  const CAV = REGION_CAVITY;
  P.push(paint(body(0), c.huFat, -1, -1, 0, REGION_FAT));
  P.push(paint(body(c.fat), c.huMuscle, -1, -1, 0, REGION_WALL));
  P.push(paint(body(c.fat + c.wall), c.huFat + 20, -1, -1, 0, CAV));
  // bowel loops (before organs so organs cover them)
  for (const b of c.bowel) {
    if (t < b.t0 || t > b.t1) continue;
    const wob = Math.sin(t * 9 + b.x) * 0.15;
    const y = b.y + 12 * wob;
    P.push(paint(ellipse(b.x, y, b.r * (1 + wob), b.r), 45, -1, -1, CAV));
    P.push(paint(ellipse(b.x, y, b.r * (1 + wob) - 3, b.r - 3), b.gas ? -700 : 20, -1, -1, CAV));
  }
  // psoas (growing toward the pelvis) and paraspinal muscles
  const ps = Math.max(0, (t - 0.35) / 0.65);
  if (ps > 0.05)
    for (const sgn of [-1, 1])
      P.push(
        paint(ellipse(sgn * (c.spineR + 6 + 12 * ps), c.spineY - 2, 8 + 16 * ps, 8 + 12 * ps), c.huMuscle, 0),
      );
  for (const sgn of [-1, 1])
    P.push(
      paint(ellipse(sgn * 30, c.spineY + c.spineR + 14, 26, 19, sgn * 0.35), c.huMuscle, 0, -1, REGION_WALL),
    );

  const o = c.organs;
  const add = (s: Ellipse | null, hu: number, label: number) => {
    if (s) P.push(paint(s, hu, label, -1, CAV));
  };
  // liver (+ left lobe) and its vessels
  add(organShape(o.liver, t), o.liver.hu, 5);
  add(organShape(o.liverLeft, t), o.liverLeft.hu, 5);
  for (const v of c.liverVessels) P.push(paint(ellipse(v.x, v.y, v.r, v.r), o.liver.hu + 45, 5, 5));
  // stomach: wall, content, gas cap
  const st = organShape(o.stomach, t);
  if (st) {
    P.push(paint(st, o.stomach.hu, 6, -1, CAV));
    const inner = ellipse(st.cx, st.cy, Math.max(1, st.rx - 4), Math.max(1, st.ry - 4), st.rot, st.harm);
    P.push(paint(inner, 15, 6, 6));
    if (c.stomachGas > 0.35) {
      const level = st.cy - st.ry * (0.2 + 0.5 * (1 - c.stomachGas));
      P.push(
        paint(ellipse(inner.cx, inner.cy, inner.rx, inner.ry, inner.rot, inner.harm, level), -750, 6, 6),
      );
    }
  }
  add(organShape(o.spleen, t), o.spleen.hu, 1);
  // pancreas (capsule along a polyline, thickness follows its profile)
  const pp = profile(o.pancreas, t);
  if (pp > 0.15) {
    const wob = 1 + 0.12 * Math.sin(2 * Math.PI * t * 3 + o.pancreas.phase);
    const rad = c.pancreasRad.map((x) => x * Math.sqrt(pp) * wob);
    P.push(paint({ kind: 'capsule', pts: c.pancreasPts, rad }, o.pancreas.hu, 8, -1, CAV));
  }
  // kidneys: cortex + sinus
  for (const [k, id, sgn] of [
    [o.kidneyR, 2, -1],
    [o.kidneyL, 3, 1],
  ] as const) {
    const s = organShape(k, t);
    if (!s) continue;
    P.push(paint(s, k.hu, id, -1, CAV));
    const sinus = ellipse(s.cx - sgn * s.rx * 0.35, s.cy, s.rx * 0.45, s.ry * 0.5, s.rot);
    P.push(paint(sinus, 25, id, id));
  }
  add(organShape(o.gallbladder, t, 0.2), o.gallbladder.hu, 4);
  // great vessels
  P.push(paint(ellipse(c.ivc.cx, c.ivc.cy, c.ivc.rx, c.ivc.ry, 0.2), c.ivc.hu, 0));
  P.push(paint(ellipse(c.aorta.cx, c.aorta.cy, c.aorta.r, c.aorta.r), c.aorta.hu, 7));
  // vertebra: cortical rim, cancellous body, posterior elements, canal
  const sy = c.spineY;
  const sr = c.spineR;
  P.push(paint(ellipse(0, sy, sr, sr * 0.9), 700, 0));
  P.push(paint(ellipse(0, sy, sr - 3, sr * 0.9 - 3), 260, 0));
  P.push(paint(ellipse(0, sy + sr + 11, 17, 7), 550, 0));
  P.push(paint(ellipse(0, sy + sr + 21, 5, 9), 550, 0));
  P.push(paint(ellipse(0, sy + sr + 4, 7.5, 6.5), 20, 0));
  // ribs around the upper abdomen (lateral and antero-lateral), inside the wall
  if (t < 0.55) {
    const n = 5;
    const rr = 1 - (c.fat + c.wall * 0.5) / Math.max(A, B);
    for (let i = 0; i < n; i++)
      for (const sgn of [-1, 1]) {
        const ang = -0.9 + (i / (n - 1)) * 1.7 + (t - 0.25) * 0.6; // anterolateral → posterolateral
        const x = sgn * (A - c.fat - c.wall * 0.5) * Math.cos(ang);
        const y = B * rr * Math.sin(ang);
        if (y > back - c.fat - 6) continue;
        P.push(paint(ellipse(x, y, 4.5, 7, sgn * ang), 650, 0));
      }
  }
  return P;
}

// ------------------------------------------------------------------------ rendering

export interface RenderOptions {
  /** field of view across the image width, mm (default 380) */
  fovMm?: number;
  /** add noise and texture (default true) */
  noise?: boolean;
  /** HU window (default TransUNet [-125, 275]) */
  window?: [number, number];
}

export interface RenderedSlice {
  h: number;
  w: number;
  /** windowed to [0, 1] */
  image: Float32Array;
  label: Int32Array;
  /** Hounsfield units before windowing */
  hu: Float32Array;
}

/** Render case `c` at craniocaudal position t (0..1) into an h×w slice. */
export function renderPhantomSlice(
  c: PhantomCase,
  t: number,
  h: number,
  w: number,
  opts: RenderOptions = {},
): RenderedSlice {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 8 || w < 8)
    throw new Error(`renderPhantomSlice: invalid size ${h}x${w} (min 8)`);
  if (!(t >= 0 && t <= 1)) throw new Error(`renderPhantomSlice: position t=${t} outside [0, 1]`);
  const fov = opts.fovMm ?? 360;
  const px = fov / w;
  const n = h * w;
  const hu = new Float32Array(n).fill(-1000);
  const label = new Int32Array(n);
  const region = new Uint8Array(n);
  const cr = Math.cos(c.rot);
  const sr = Math.sin(c.rot);
  // anatomy coordinates (mm) of every pixel: shift, then rotate
  const X = new Float64Array(n);
  const Y = new Float64Array(n);
  for (let i = 0; i < h; i++) {
    const y0 = (i + 0.5 - h / 2) * px - c.ty;
    for (let j = 0; j < w; j++) {
      const x0 = (j + 0.5 - w / 2) * px - c.tx;
      X[i * w + j] = cr * x0 + sr * y0;
      Y[i * w + j] = -sr * x0 + cr * y0;
    }
  }
  const ac = Math.abs(cr);
  const as = Math.abs(sr);

  for (const p of slicePaints(c, t)) {
    const s = p.shape;
    // pixel bounding box: the anatomy-space box, rotated back (conservatively) into the image
    const [qx, qy, ex, ey] = extent(s);
    const pxc = cr * qx - sr * qy + c.tx;
    const pyc = sr * qx + cr * qy + c.ty;
    const bx = ex * ac + ey * as + px;
    const by = ex * as + ey * ac + px;
    const j0 = Math.max(0, Math.floor((pxc - bx) / px + w / 2 - 0.5));
    const j1 = Math.min(w - 1, Math.ceil((pxc + bx) / px + w / 2 - 0.5));
    const i0 = Math.max(0, Math.floor((pyc - by) / px + h / 2 - 0.5));
    const i1 = Math.min(h - 1, Math.ceil((pyc + by) / px + h / 2 - 0.5));
    if (j0 > j1 || i0 > i1) continue;
    const { hu: val, label: lab, onlyLabel, onlyRegion, setRegion } = p;
    if (s.kind === 'ellipse') {
      const cosr = Math.cos(s.rot);
      const sinr = Math.sin(s.rot);
      const hs = 1 + harmSum(s.harm);
      const lim2 = hs * hs;
      const [h0, h1, h2, h3, h4, h5] = s.harm as [number, number, number, number, number, number];
      const plain = hs === 1;
      const irx = 1 / s.rx;
      const iry = 1 / s.ry;
      for (let i = i0; i <= i1; i++) {
        for (let k = i * w + j0, kEnd = i * w + j1; k <= kEnd; k++) {
          if (onlyLabel >= 0 && label[k] !== onlyLabel) continue;
          if (region[k]! < onlyRegion) continue;
          const y = Y[k]!;
          if (y > s.clipY) continue;
          const dx = X[k]! - s.cx;
          const dy = y - s.cy;
          const u = (dx * cosr + dy * sinr) * irx;
          const v = (dy * cosr - dx * sinr) * iry;
          const r2 = u * u + v * v;
          if (r2 >= lim2) continue;
          if (!plain && r2 > 0) {
            const r = Math.sqrt(r2);
            const cc = u / r;
            const ss = v / r;
            const c2 = cc * cc - ss * ss;
            const s2 = 2 * cc * ss;
            const c3 = cc * c2 - ss * s2;
            const s3 = ss * c2 + cc * s2;
            const c4 = c2 * c2 - s2 * s2;
            const s4 = 2 * s2 * c2;
            if (r >= 1 + h0 * c2 + h1 * s2 + h2 * c3 + h3 * s3 + h4 * c4 + h5 * s4) continue;
          }
          hu[k] = val;
          if (lab >= 0) label[k] = lab;
          if (setRegion > 0) region[k] = setRegion;
        }
      }
    } else {
      for (let i = i0; i <= i1; i++) {
        for (let k = i * w + j0, kEnd = i * w + j1; k <= kEnd; k++) {
          if (onlyLabel >= 0 && label[k] !== onlyLabel) continue;
          if (region[k]! < onlyRegion) continue;
          if (!insideCapsule(s, X[k]!, Y[k]!)) continue;
          hu[k] = val;
          if (lab >= 0) label[k] = lab;
          if (setRegion > 0) region[k] = setRegion;
        }
      }
    }
  }

  // partial-volume blur ([1,2,1]/4 separable), then texture and noise
  blur121(hu, h, w);
  if (opts.noise ?? true) {
    let st = hash(c.seed, Math.round(t * 1e6), h, w) | 1;
    st = addTexture(hu, h, w, st, c.textureSd);
    const tab = gaussTable();
    const sd = c.noiseSd;
    for (let k = 0; k < n; k++) {
      // xorshift32 into a fixed table of standard normals
      st ^= st << 13;
      st ^= st >>> 17;
      st ^= st << 5;
      if (hu[k]! <= -900) continue; // keep air clean
      hu[k] = hu[k]! + tab[st & 4095]! * sd;
    }
  }
  const [lo, hi] = opts.window ?? [-125, 275];
  const image = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const v = hu[k]!;
    image[k] = (v < lo ? 0 : v > hi ? hi - lo : v - lo) / (hi - lo);
  }
  return { h, w, image, label, hu };
}

let GAUSS: Float32Array | null = null;
function gaussTable(): Float32Array {
  if (!GAUSS) {
    const r = new Rng(12345);
    GAUSS = new Float32Array(4096);
    for (let i = 0; i < 4096; i++) GAUSS[i] = r.normal();
  }
  return GAUSS;
}

function blur121(a: Float32Array, h: number, w: number): void {
  const tmp = new Float32Array(a.length);
  for (let i = 0; i < h; i++) {
    const r = i * w;
    for (let j = 0; j < w; j++) {
      const l = a[r + Math.max(0, j - 1)]!;
      const m = a[r + j]!;
      const rr = a[r + Math.min(w - 1, j + 1)]!;
      tmp[r + j] = 0.25 * l + 0.5 * m + 0.25 * rr;
    }
  }
  for (let i = 0; i < h; i++) {
    const up = Math.max(0, i - 1) * w;
    const dn = Math.min(h - 1, i + 1) * w;
    const r = i * w;
    for (let j = 0; j < w; j++) a[r + j] = 0.25 * tmp[up + j]! + 0.5 * tmp[r + j]! + 0.25 * tmp[dn + j]!;
  }
}

/** Low-frequency texture: a coarse random grid, bilinearly upsampled; returns the PRNG state. */
function addTexture(a: Float32Array, h: number, w: number, state: number, sd: number): number {
  const G = 10;
  const g = new Float32Array((G + 1) * (G + 1));
  let st = state;
  for (let k = 0; k < g.length; k++) {
    st ^= st << 13;
    st ^= st >>> 17;
    st ^= st << 5;
    g[k] = (((st >>> 0) / 4294967296) * 2 - 1) * sd * 1.7;
  }
  for (let i = 0; i < h; i++) {
    const fy = (i / h) * G;
    const iy = Math.min(G - 1, Math.floor(fy));
    const ty = fy - iy;
    for (let j = 0; j < w; j++) {
      const k = i * w + j;
      if (a[k]! <= -900) continue;
      const fx = (j / w) * G;
      const ix = Math.min(G - 1, Math.floor(fx));
      const tx = fx - ix;
      const v00 = g[iy * (G + 1) + ix]!;
      const v01 = g[iy * (G + 1) + ix + 1]!;
      const v10 = g[(iy + 1) * (G + 1) + ix]!;
      const v11 = g[(iy + 1) * (G + 1) + ix + 1]!;
      a[k] = a[k]! + (v00 * (1 - tx) + v01 * tx) * (1 - ty) + (v10 * (1 - tx) + v11 * tx) * ty;
    }
  }
  return st;
}

// ------------------------------------------------------------------------ convenience

/** One phantom training slice of case `seed` at position t (square size×size unless w is given). */
export function phantomSlice(seed: number, t: number, h: number, w = h, opts: RenderOptions = {}): Slice {
  const r = renderPhantomSlice(phantomCase(seed), t, h, w, opts);
  return { id: `phantom${seed}_t${t.toFixed(3)}`, h, w, image: r.image, label: r.label };
}

/** Slice positions of a d-slice phantom volume (covering t ∈ (0, 1)). */
export function phantomSliceTs(d: number): number[] {
  return Array.from({ length: d }, (_, k) => (k + 0.5) / d);
}

/** A phantom test volume (d, h, w) of case `seed`. */
export function phantomVolume(seed: number, d: number, h: number, w = h, opts: RenderOptions = {}): Volume {
  if (!Number.isInteger(d) || d < 1) throw new Error(`phantomVolume: invalid depth ${d}`);
  const c = phantomCase(seed);
  const image = new Float32Array(d * h * w);
  const label = new Int32Array(d * h * w);
  phantomSliceTs(d).forEach((t, z) => {
    const s = renderPhantomSlice(c, t, h, w, opts);
    image.set(s.image, z * h * w);
    label.set(s.label, z * h * w);
  });
  return { id: `phantom${seed}`, d, h, w, image, label };
}
