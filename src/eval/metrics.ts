/**
 * Evaluation metrics of SAM-LST on Synapse (spec SAM-LST.md §13): per-volume, per-organ DSC and
 * HD95 with MedPy 0.4.0 semantics, exactly as test/oracle/metrics_ref.py computes them with scipy.
 *
 * - Volumes are flat arrays in C order with a shape of rank 1..3 (Synapse: (D, H, W)); a binary
 *   mask is any numeric array where nonzero = foreground.
 * - DSC = 2|A∩B| / (|A| + |B|) (1 when both are empty, as MedPy's `dc`).
 * - surface(M) = M XOR erosion(M) with the face-connected structure (6 neighbours in 3-D, 4 in 2-D,
 *   2 in 1-D), one iteration, the array border counting as background: a foreground voxel is on the
 *   surface iff one of its face neighbours is background or outside the array.
 * - Directed surface distances A→B = Euclidean distance transform of NOT surface(B), read at the
 *   voxels of surface(A) (C order). Unit voxel spacing unless a spacing is passed (an extension; the
 *   SAM-LST evaluation never passes one).
 * - HD95 = numpy.percentile(concat(d(A→B), d(B→A)), 95) with numpy's default linear interpolation.
 * - calculate_metric_percase: both non-empty → (DSC, HD95); prediction non-empty and GT empty →
 *   (1, 0); prediction empty → (0, 0).
 * - Averaging: per organ the mean over cases, then the mean over organs (numpy's summation order, so
 *   the numbers are bit-identical to metrics_ref.aggregate).
 *
 * The distances are exact and never come from an O(N·M) loop: surfaces are collected as lists of
 * voxels (scanning each mask's bounding box only), then a separable squared Euclidean distance
 * transform (two linear sweeps along axis 0, then the Felzenszwalb–Huttenlocher lower envelope of
 * parabolas along axes 1 and 2, O(N) per axis) is evaluated only where it is needed: sources are
 * the (y, x) columns holding a feature (surface) voxel, slices are those holding query voxels, and
 * the last pass is read at the query voxels only. With unit spacing every squared distance is an
 * integer, so the result equals scipy's sqrt(dz² + dy² + dx²) bit for bit; with a spacing the terms
 * are summed in scipy's order ((dz·sz)² + (dy·sy)²) + (dx·sx)² (last-bit differences are possible
 * only between equidistant candidates).
 *
 * Host-only (imports src/util only).
 */
import { fmt, numel, ShapeError, type Shape } from '../util/shape.js';

/** A flat C-order volume; nonzero = foreground for binary masks, class ids for label volumes. */
export type Volume = ArrayLike<number>;
/** Voxel spacing: one number for every axis, or one per axis (same rank as the shape). */
export type Spacing = number | readonly number[];

/** DSC (fraction in [0, 1], not ×100) and HD95 (voxels, or spacing units) of one organ in one case. */
export interface OrganMetric {
  dice: number;
  hd95: number;
}

/** One evaluated case: organs[i] belongs to label i + 1. */
export interface CaseResult {
  name: string;
  organs: OrganMetric[];
}

/** The evaluation summary: the per-case table, per-organ means over cases and the means over organs. */
export interface MetricsSummary {
  /** Number of organ classes (labels 1..classes). */
  classes: number;
  cases: CaseResult[];
  /** perOrgan[i] = mean over cases of label i + 1. */
  perOrgan: OrganMetric[];
  /** Mean over organs of perOrgan (= mean over all case-organ pairs up to rounding). */
  meanDice: number;
  meanHd95: number;
}

/** The 8 Synapse organs evaluated by SAM-LST (labels 1..8). */
export const NUM_ORGANS = 8;

// ---------------------------------------------------------------------------------------------
// shapes, spacing, selection of foreground voxels
// ---------------------------------------------------------------------------------------------

/** (n0, n1, n2) with leading 1s for rank < 3, and which of the three axes are real axes. */
interface Grid {
  n: [number, number, number];
  real: [boolean, boolean, boolean];
  size: number;
}

function grid(op: string, shape: Shape, length: number): Grid {
  if (shape.length < 1 || shape.length > 3)
    throw new ShapeError(`${op}: volumes must have rank 1..3, got shape ${fmt(shape)}`);
  for (const d of shape)
    if (!Number.isInteger(d) || d < 1) throw new ShapeError(`${op}: invalid shape ${fmt(shape)}`);
  const size = numel(shape);
  if (length !== size) throw new ShapeError(`${op}: ${length} values do not fill shape ${fmt(shape)}`);
  const pad = 3 - shape.length;
  const n: [number, number, number] = [1, 1, 1];
  const real: [boolean, boolean, boolean] = [false, false, false];
  for (let i = 0; i < shape.length; i++) {
    n[pad + i] = shape[i] as number;
    real[pad + i] = true;
  }
  return { n, real, size };
}

function spacing3(op: string, spacing: Spacing | undefined, rank: number): [number, number, number] {
  const out: [number, number, number] = [1, 1, 1];
  if (spacing === undefined) return out;
  const list = typeof spacing === 'number' ? new Array<number>(rank).fill(spacing) : [...spacing];
  if (list.length !== rank)
    throw new ShapeError(`${op}: spacing [${list.join(', ')}] does not match a rank-${rank} volume`);
  for (let i = 0; i < rank; i++) {
    const s = list[i] as number;
    if (!(s > 0) || !Number.isFinite(s)) throw new RangeError(`${op}: invalid voxel spacing ${s}`);
    out[3 - rank + i] = s;
  }
  return out;
}

/** Foreground selector: a label ≥ 0 (v === label), POSITIVE (v > 0) or NONZERO (v !== 0). */
const POSITIVE = -1;
const NONZERO = -2;

function isFg(v: number, sel: number): boolean {
  return sel >= 0 ? v === sel : sel === POSITIVE ? v > 0 : v !== 0;
}

/** Count and bounding box [lo, hi) of the selected voxels; lo = n, hi = 0 when empty. */
interface Extent {
  count: number;
  lo: [number, number, number];
  hi: [number, number, number];
}

function emptyExtent(g: Grid): Extent {
  return { count: 0, lo: [g.n[0], g.n[1], g.n[2]], hi: [0, 0, 0] };
}

function extentOf(data: Volume, g: Grid, sel: number): Extent {
  const e = emptyExtent(g);
  const [n0, n1, n2] = g.n;
  let i = 0;
  for (let z = 0; z < n0; z++)
    for (let y = 0; y < n1; y++) {
      let first = -1;
      let last = -1;
      for (let x = 0; x < n2; x++, i++) {
        if (!isFg(data[i] as number, sel)) continue;
        e.count++;
        if (first < 0) first = x;
        last = x;
      }
      if (first >= 0) grow(e, z, y, first, last);
    }
  return e;
}

function grow(e: Extent, z: number, y: number, x0: number, x1: number): void {
  if (z < e.lo[0]) e.lo[0] = z;
  if (z + 1 > e.hi[0]) e.hi[0] = z + 1;
  if (y < e.lo[1]) e.lo[1] = y;
  if (y + 1 > e.hi[1]) e.hi[1] = y + 1;
  if (x0 < e.lo[2]) e.lo[2] = x0;
  if (x1 + 1 > e.hi[2]) e.hi[2] = x1 + 1;
}

// ---------------------------------------------------------------------------------------------
// surface and exact Euclidean distance transform
// ---------------------------------------------------------------------------------------------

/**
 * The surface voxels of the selected mask (extent e, non-empty) as flat indices in C order: a
 * selected voxel with a face neighbour along a real axis that is unselected or outside the array.
 * Only the mask's bounding box is scanned.
 */
function surfaceList(data: Volume, g: Grid, sel: number, e: Extent): number[] {
  const [n0, n1, n2] = g.n;
  const plane = n1 * n2;
  const [r0, r1, r2] = g.real;
  const out: number[] = [];
  for (let z = e.lo[0]; z < e.hi[0]; z++)
    for (let y = e.lo[1]; y < e.hi[1]; y++) {
      const row = (z * n1 + y) * n2;
      for (let x = e.lo[2]; x < e.hi[2]; x++) {
        const i = row + x;
        if (!isFg(data[i] as number, sel)) continue;
        if (
          (r2 &&
            (x === 0 ||
              x === n2 - 1 ||
              !isFg(data[i - 1] as number, sel) ||
              !isFg(data[i + 1] as number, sel))) ||
          (r1 &&
            (y === 0 ||
              y === n1 - 1 ||
              !isFg(data[i - n2] as number, sel) ||
              !isFg(data[i + n2] as number, sel))) ||
          (r0 &&
            (z === 0 ||
              z === n0 - 1 ||
              !isFg(data[i - plane] as number, sel) ||
              !isFg(data[i + plane] as number, sel)))
        )
          out.push(i);
      }
    }
  return out;
}

/** The lower envelope being built: apex position, apex value, value + w·position², left boundary. */
interface Envelope {
  v: Float64Array;
  fv: Float64Array;
  h: Float64Array;
  zb: Float64Array;
}

function envelopeBuffers(len: number): Envelope {
  return {
    v: new Float64Array(len),
    fv: new Float64Array(len),
    h: new Float64Array(len),
    zb: new Float64Array(len + 1),
  };
}

/**
 * Lower envelope of the parabolas y = ((x − pos[po + j])·sp)² + val[vo + j], j < count, positions
 * ascending (Felzenszwalb & Huttenlocher 2012). Leaves parabola k (apex v[k], value fv[k]) minimal
 * on [zb[k], zb[k + 1]] and returns the number of envelope parabolas.
 */
function lowerEnvelope(
  env: Envelope,
  pos: Float64Array,
  po: number,
  val: Float64Array,
  vo: number,
  count: number,
  sp: number,
): number {
  const { v, fv, h, zb } = env;
  const w = sp * sp;
  const w2 = 2 * w;
  let k = -1;
  for (let j = 0; j < count; j++) {
    const q = pos[po + j] as number;
    const fq = val[vo + j] as number;
    const hq = fq + w * q * q;
    let s = -Infinity;
    while (k >= 0) {
      s = (hq - (h[k] as number)) / (w2 * (q - (v[k] as number)));
      if (s <= (zb[k] as number)) k--;
      else break;
    }
    k++;
    v[k] = q;
    fv[k] = fq;
    h[k] = hq;
    zb[k] = k === 0 ? -Infinity : s;
  }
  zb[k + 1] = Infinity;
  return k + 1;
}

/**
 * Directed distances: for every query voxel (flat C-order indices, ascending) the Euclidean
 * distance to the nearest feature voxel (flat indices, ascending, non-empty), in query order.
 *
 * A separable exact squared EDT restricted to what the queries need. A "feature column" is a
 * (y, x) with at least one feature voxel at some z; every other column stays +∞ after the z pass,
 * so only feature columns can be sources of the later passes.
 *  - axis 0 (z): two sweeps give, per feature column, the distance to its nearest feature in z;
 *    kept for the slices that hold query voxels only;
 *  - axis 1 (y): per query slice and feature x, the lower envelope of that x's feature columns,
 *    evaluated at the query rows of the slice;
 *  - axis 2 (x): per query row, the lower envelope over the feature x's, evaluated at the query
 *    voxels of the row.
 * Work and memory: (query slices) × (feature columns), plus the lists.
 */
function directedDistances(
  feat: readonly number[],
  query: readonly number[],
  n: readonly [number, number, number],
  sp: readonly [number, number, number],
): Float64Array {
  const [n0, n1, n2] = n;
  const plane = n1 * n2;
  const [s0, s1, s2] = sp;
  const nf = feat.length;
  const nq = query.length;
  const out = new Float64Array(nq);
  if (nq === 0) return out;
  if (nf === 0) return out.fill(Infinity);
  // bounding box of the features
  let fy0 = n1;
  let fy1 = -1;
  let fx0 = n2;
  let fx1 = -1;
  for (let t = 0; t < nf; t++) {
    const i = (feat[t] as number) % plane;
    const y = Math.floor(i / n2);
    const x = i - y * n2;
    if (y < fy0) fy0 = y;
    if (y > fy1) fy1 = y;
    if (x < fx0) fx0 = x;
    if (x > fx1) fx1 = x;
  }
  const fz0 = Math.floor((feat[0] as number) / plane);
  const fz1 = Math.floor((feat[nf - 1] as number) / plane);
  const py = fy1 - fy0 + 1;
  const px = fx1 - fx0 + 1;
  // feature columns, numbered x-major then y: colOf[(x − fx0)·py + (y − fy0)], colY, xStart
  const colOf = new Int32Array(px * py).fill(-1);
  for (let t = 0; t < nf; t++) {
    const i = (feat[t] as number) % plane;
    const y = Math.floor(i / n2);
    colOf[(i - y * n2 - fx0) * py + (y - fy0)] = 0;
  }
  const xStart = new Int32Array(px + 1);
  const colYList: number[] = [];
  const xs: number[] = [];
  for (let xr = 0; xr < px; xr++) {
    xStart[xr] = colYList.length;
    for (let yr = 0; yr < py; yr++) {
      const at = xr * py + yr;
      if (colOf[at] === -1) continue;
      colOf[at] = colYList.length;
      colYList.push(fy0 + yr);
    }
    if (colYList.length > (xStart[xr] as number)) xs.push(xr);
  }
  xStart[px] = colYList.length;
  const ncol = colYList.length;
  const colY = Float64Array.from(colYList);
  const nxs = xs.length;
  const xsAbs = Float64Array.from(xs, (xr) => fx0 + xr);
  const colOfFeature = (i: number): number => {
    const r = i % plane;
    const y = Math.floor(r / n2);
    return colOf[(r - y * n2 - fx0) * py + (y - fy0)] as number;
  };
  // query slices → slots
  const slot = new Int32Array(n0).fill(-1);
  let ns = 0;
  for (let t = 0; t < nq; t++) {
    const z = Math.floor((query[t] as number) / plane);
    if (slot[z] === -1) slot[z] = ns++;
  }
  const qz0 = Math.floor((query[0] as number) / plane);
  const qz1 = Math.floor((query[nq - 1] as number) / plane);
  const g = new Float64Array(ns * ncol);
  // axis 0, forward sweep: z − (z of the last feature at or above z) per feature column
  const last = new Int32Array(ncol).fill(-1);
  let fi = 0;
  for (let z = Math.min(fz0, qz0); z <= qz1; z++) {
    for (; fi < nf && Math.floor((feat[fi] as number) / plane) === z; fi++)
      last[colOfFeature(feat[fi] as number)] = z;
    const s = slot[z] as number;
    if (s < 0) continue;
    const base = s * ncol;
    for (let c = 0; c < ncol; c++) {
      const l = last[c] as number;
      g[base + c] = l >= 0 ? z - l : Infinity;
    }
  }
  // axis 0, backward sweep: min with (z of the next feature at or below z) − z; squared, spaced
  last.fill(-1);
  fi = nf - 1;
  for (let z = Math.max(fz1, qz1); z >= qz0; z--) {
    for (; fi >= 0 && Math.floor((feat[fi] as number) / plane) === z; fi--)
      last[colOfFeature(feat[fi] as number)] = z;
    const s = slot[z] as number;
    if (s < 0) continue;
    const base = s * ncol;
    for (let c = 0; c < ncol; c++) {
      const l = last[c] as number;
      let d = g[base + c] as number;
      if (l >= 0 && l - z < d) d = l - z;
      const t = d * s0;
      g[base + c] = t * t;
    }
  }
  // axes 1 and 2, slice by slice
  const env = envelopeBuffers(Math.max(py, nxs));
  const { v, fv, zb } = env;
  const rowsY: number[] = [];
  const rowsStart: number[] = [];
  const sy = new Float64Array(n1 * nxs);
  let t = 0;
  while (t < nq) {
    const z = Math.floor((query[t] as number) / plane);
    // query rows of this slice: their y and the position of their first query voxel
    rowsY.length = 0;
    rowsStart.length = 0;
    let u = t;
    for (; u < nq; u++) {
      const i = query[u] as number;
      if (Math.floor(i / plane) !== z) break;
      const y = Math.floor(i / n2) - z * n1;
      if (rowsY.length === 0 || rowsY[rowsY.length - 1] !== y) {
        rowsY.push(y);
        rowsStart.push(u);
      }
    }
    rowsStart.push(u);
    const nr = rowsY.length;
    // axis 1: sy[row j][m] at the query rows, for every feature x = xsAbs[m]
    const base = (slot[z] as number) * ncol;
    for (let m = 0; m < nxs; m++) {
      const xr = xs[m] as number;
      const c0 = xStart[xr] as number;
      lowerEnvelope(env, colY, c0, g, base + c0, (xStart[xr + 1] as number) - c0, s1);
      let k = 0;
      for (let j = 0; j < nr; j++) {
        const y = rowsY[j] as number;
        while ((zb[k + 1] as number) < y) k++;
        const d = (y - (v[k] as number)) * s1;
        sy[j * nxs + m] = d * d + (fv[k] as number);
      }
    }
    // axis 2: per query row, evaluated at its query voxels
    for (let j = 0; j < nr; j++) {
      lowerEnvelope(env, xsAbs, 0, sy, j * nxs, nxs, s2);
      let k = 0;
      const rowBase = (z * n1 + (rowsY[j] as number)) * n2;
      for (let q = rowsStart[j] as number; q < (rowsStart[j + 1] as number); q++) {
        const x = (query[q] as number) - rowBase;
        while ((zb[k + 1] as number) < x) k++;
        const d = (x - (v[k] as number)) * s2;
        out[q] = Math.sqrt(d * d + (fv[k] as number));
      }
    }
    t = u;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// percentile (numpy default, method 'linear')
// ---------------------------------------------------------------------------------------------

/** k-th smallest (0-based) of a, partitioning a around index k; three-way partition (many ties). */
function select(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo] as number;
    const y = a[mid] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    // a[lo..lt) < pivot, a[lt..i) == pivot, a(gt..hi] > pivot
    let lt = lo;
    let i = lo;
    let gt = hi;
    while (i <= gt) {
      const v = a[i] as number;
      if (v < pivot) {
        a[i] = a[lt] as number;
        a[lt] = v;
        lt++;
        i++;
      } else if (v > pivot) {
        a[i] = a[gt] as number;
        a[gt] = v;
        gt--;
      } else i++;
    }
    if (k < lt) hi = lt - 1;
    else if (k > gt) lo = gt + 1;
    else return pivot;
  }
  return a[k] as number;
}

/**
 * numpy.percentile(values, q) with the default method 'linear' (bit-identical: virtual index
 * (n − 1)·(q/100), numpy's two-sided lerp). `values` must not contain NaN; it is not modified.
 */
export function percentile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) throw new RangeError('percentile: empty input');
  return percentileInPlace(Float64Array.from(values), q);
}

/** percentile on a scratch array (reordered). */
function percentileInPlace(a: Float64Array, q: number): number {
  const n = a.length;
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile: q = ${q} is outside [0, 100]`);
  const vi = (n - 1) * (q / 100);
  if (vi >= n - 1) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) if ((a[i] as number) > m) m = a[i] as number;
    return m;
  }
  const prev = Math.floor(vi);
  const lo = select(a, prev);
  // a is now partitioned around index prev: the next order statistic is the minimum above it
  let hi = Infinity;
  for (let i = prev + 1; i < n; i++) if ((a[i] as number) < hi) hi = a[i] as number;
  const gamma = vi - prev;
  const diff = hi - lo;
  return gamma >= 0.5 ? hi - diff * (1 - gamma) : lo + diff * gamma;
}

// ---------------------------------------------------------------------------------------------
// public metrics on binary masks
// ---------------------------------------------------------------------------------------------

/** MedPy `dc`: 2|A∩B| / (|A| + |B|) over nonzero voxels; 1 when both masks are empty. */
export function dice(a: Volume, b: Volume): number {
  if (a.length !== b.length) throw new ShapeError(`dice: masks have ${a.length} and ${b.length} values`);
  let ca = 0;
  let cb = 0;
  let both = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] !== 0;
    const y = b[i] !== 0;
    if (x) ca++;
    if (y) cb++;
    if (x && y) both++;
  }
  const denom = ca + cb;
  return denom === 0 ? 1 : (2 * both) / denom;
}

/** surface(mask) as 0/1 bytes over the whole array (border counts as background). */
export function surface(mask: Volume, shape: Shape): Uint8Array {
  const g = grid('surface', shape, mask.length);
  const out = new Uint8Array(g.size);
  const e = extentOf(mask, g, NONZERO);
  if (e.count > 0) for (const i of surfaceList(mask, g, NONZERO, e)) out[i] = 1;
  return out;
}

/** Both directed surface-distance sets of two selected, non-empty masks. */
function sets(
  g: Grid,
  a: Volume,
  selA: number,
  ea: Extent,
  b: Volume,
  selB: number,
  eb: Extent,
  sp: readonly [number, number, number],
): { ab: Float64Array; ba: Float64Array } {
  const sa = surfaceList(a, g, selA, ea);
  const sb = surfaceList(b, g, selB, eb);
  return { ab: directedDistances(sb, sa, g.n, sp), ba: directedDistances(sa, sb, g.n, sp) };
}

function hd95Of(s: { ab: Float64Array; ba: Float64Array }): number {
  const all = new Float64Array(s.ab.length + s.ba.length);
  all.set(s.ab, 0);
  all.set(s.ba, s.ab.length);
  return percentileInPlace(all, 95);
}

function binarySets(
  op: string,
  a: Volume,
  b: Volume,
  shape: Shape,
  spacing: Spacing | undefined,
): { ab: Float64Array; ba: Float64Array } {
  const g = grid(op, shape, a.length);
  if (b.length !== g.size) throw new ShapeError(`${op}: ${b.length} values do not fill shape ${fmt(shape)}`);
  const sp = spacing3(op, spacing, shape.length);
  const ea = extentOf(a, g, NONZERO);
  const eb = extentOf(b, g, NONZERO);
  if (ea.count === 0) throw new RangeError(`${op}: the first mask is empty`);
  if (eb.count === 0) throw new RangeError(`${op}: the second mask is empty`);
  return sets(g, a, NONZERO, ea, b, NONZERO, eb, sp);
}

/**
 * MedPy `__surface_distances(a, b)`: for every surface voxel of `a` (C order) the distance to the
 * nearest surface voxel of `b`. Throws RangeError when either mask is empty (as MedPy does).
 */
export function surfaceDistances(a: Volume, b: Volume, shape: Shape, spacing?: Spacing): Float64Array {
  return binarySets('surfaceDistances', a, b, shape, spacing).ab;
}

/** MedPy `hd95(a, b)`: 95th percentile of both directed surface-distance sets together. */
export function hd95(a: Volume, b: Volume, shape: Shape, spacing?: Spacing): number {
  return hd95Of(binarySets('hd95', a, b, shape, spacing));
}

/**
 * `calculate_metric_percase(pred, gt)` on binary volumes (foreground = value > 0): both non-empty
 * → (DSC, HD95); prediction non-empty, GT empty → (1, 0); prediction empty → (0, 0).
 */
export function metricPerCase(pred: Volume, gt: Volume, shape: Shape, spacing?: Spacing): OrganMetric {
  const g = grid('metricPerCase', shape, pred.length);
  if (gt.length !== g.size)
    throw new ShapeError(`metricPerCase: ${gt.length} values do not fill shape ${fmt(shape)}`);
  const sp = spacing3('metricPerCase', spacing, shape.length);
  const ep = extentOf(pred, g, POSITIVE);
  const eg = extentOf(gt, g, POSITIVE);
  if (ep.count > 0 && eg.count > 0) {
    // |A ∩ B| over the intersection of the two bounding boxes
    const [, n1, n2] = g.n;
    let inter = 0;
    for (let z = Math.max(ep.lo[0], eg.lo[0]); z < Math.min(ep.hi[0], eg.hi[0]); z++)
      for (let y = Math.max(ep.lo[1], eg.lo[1]); y < Math.min(ep.hi[1], eg.hi[1]); y++) {
        const row = (z * n1 + y) * n2;
        for (let x = Math.max(ep.lo[2], eg.lo[2]); x < Math.min(ep.hi[2], eg.hi[2]); x++)
          if ((pred[row + x] as number) > 0 && (gt[row + x] as number) > 0) inter++;
      }
    return {
      dice: (2 * inter) / (ep.count + eg.count),
      hd95: hd95Of(sets(g, pred, POSITIVE, ep, gt, POSITIVE, eg, sp)),
    };
  }
  return ep.count > 0 ? { dice: 1, hd95: 0 } : { dice: 0, hd95: 0 };
}

// ---------------------------------------------------------------------------------------------
// label volumes, cases, averaging
// ---------------------------------------------------------------------------------------------

/**
 * The metrics of one case: for every organ label i = 1..classes, calculate_metric_percase(
 * prediction == i, label == i) on the whole volume. One pass collects counts, intersections and
 * bounding boxes; HD95 then runs on each organ's bounding box only.
 */
export function caseMetrics(
  prediction: Volume,
  label: Volume,
  shape: Shape,
  classes: number = NUM_ORGANS,
  spacing?: Spacing,
): OrganMetric[] {
  const g = grid('caseMetrics', shape, prediction.length);
  if (label.length !== g.size)
    throw new ShapeError(`caseMetrics: ${label.length} labels do not fill shape ${fmt(shape)}`);
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`caseMetrics: classes = ${classes}`);
  const sp = spacing3('caseMetrics', spacing, shape.length);
  const ep: Extent[] = [];
  const eg: Extent[] = [];
  for (let c = 0; c <= classes; c++) {
    ep.push(emptyExtent(g));
    eg.push(emptyExtent(g));
  }
  const inter = new Float64Array(classes + 1);
  const [n0, n1, n2] = g.n;
  let i = 0;
  for (let z = 0; z < n0; z++)
    for (let y = 0; y < n1; y++)
      for (let x = 0; x < n2; x++, i++) {
        const p = prediction[i] as number;
        const t = label[i] as number;
        if (p >= 1 && p <= classes && Number.isInteger(p)) {
          const e = ep[p] as Extent;
          e.count++;
          grow(e, z, y, x, x);
          if (t === p) inter[p] = (inter[p] as number) + 1;
        }
        if (t >= 1 && t <= classes && Number.isInteger(t)) {
          const e = eg[t] as Extent;
          e.count++;
          grow(e, z, y, x, x);
        }
      }
  const out: OrganMetric[] = [];
  for (let c = 1; c <= classes; c++) {
    const a = ep[c] as Extent;
    const b = eg[c] as Extent;
    if (a.count > 0 && b.count > 0)
      out.push({
        dice: (2 * (inter[c] as number)) / (a.count + b.count),
        hd95: hd95Of(sets(g, prediction, c, a, label, c, b, sp)),
      });
    else out.push(a.count > 0 ? { dice: 1, hd95: 0 } : { dice: 0, hd95: 0 });
  }
  return out;
}

/** numpy's pairwise summation (add.reduce over one axis of float64), for bit-identical means. */
function pairwiseSum(x: readonly number[], lo: number, n: number): number {
  if (n < 8) {
    let r = 0;
    for (let i = 0; i < n; i++) r += x[lo + i] as number;
    return r;
  }
  if (n <= 128) {
    const r = x.slice(lo, lo + 8) as number[];
    let i = 8;
    for (; i < n - (n % 8); i += 8)
      for (let j = 0; j < 8; j++) r[j] = (r[j] as number) + (x[lo + i + j] as number);
    const at = (j: number): number => r[j] as number;
    let res = at(0) + at(1) + (at(2) + at(3)) + (at(4) + at(5) + (at(6) + at(7)));
    for (; i < n; i++) res += x[lo + i] as number;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(x, lo, n2) + pairwiseSum(x, lo + n2, n - n2);
}

/** numpy mean of a 1-D float64 array. */
function npMean(x: readonly number[]): number {
  return pairwiseSum(x, 0, x.length) / x.length;
}

/**
 * metrics_ref.aggregate: per organ the mean over cases (summed in case order, as numpy's sum(0)),
 * then the mean over organs of those per-organ means (numpy pairwise summation).
 */
export function aggregate(perCase: readonly (readonly OrganMetric[])[]): {
  perOrgan: OrganMetric[];
  meanDice: number;
  meanHd95: number;
} {
  const nc = perCase.length;
  if (nc === 0) throw new RangeError('aggregate: no cases');
  const classes = (perCase[0] as readonly OrganMetric[]).length;
  if (classes === 0) throw new RangeError('aggregate: no organs');
  for (const row of perCase)
    if (row.length !== classes)
      throw new ShapeError(`aggregate: cases have ${classes} and ${row.length} organs`);
  const perOrgan: OrganMetric[] = [];
  for (let j = 0; j < classes; j++) {
    let sd = 0;
    let sh = 0;
    for (const row of perCase) {
      const m = row[j] as OrganMetric;
      sd += m.dice;
      sh += m.hd95;
    }
    perOrgan.push({ dice: sd / nc, hd95: sh / nc });
  }
  return {
    perOrgan,
    meanDice: npMean(perOrgan.map((m) => m.dice)),
    meanHd95: npMean(perOrgan.map((m) => m.hd95)),
  };
}

/** The summary of evaluated cases (per-case table + averages). */
export function summarize(cases: readonly CaseResult[]): MetricsSummary {
  const agg = aggregate(cases.map((c) => c.organs));
  return {
    classes: agg.perOrgan.length,
    cases: cases.map((c) => ({ name: c.name, organs: c.organs.map((m) => ({ ...m })) })),
    perOrgan: agg.perOrgan,
    meanDice: agg.meanDice,
    meanHd95: agg.meanHd95,
  };
}

/** Convenience: evaluate named (prediction, label) volumes and summarise them. */
export function evaluateCases(
  cases: readonly { name: string; prediction: Volume; label: Volume; shape: Shape }[],
  classes: number = NUM_ORGANS,
): MetricsSummary {
  return summarize(
    cases.map((c) => ({ name: c.name, organs: caseMetrics(c.prediction, c.label, c.shape, classes) })),
  );
}
