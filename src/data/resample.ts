/**
 * Ports of the scipy.ndimage / numpy array ops SAM-LST's data pipeline uses, with scipy's exact
 * arithmetic (float64 throughout, same operation order, same boundary rules):
 *
 *  - `zoom2d(x, h, w, oh, ow, order)`: `scipy.ndimage.zoom` with its defaults (mode 'constant',
 *    cval 0, prefilter True, grid_mode False) for order 0 (nearest) and order 3 (cubic B-spline).
 *  - `rotate2d(x, h, w, angle, order)`: `scipy.ndimage.rotate(x, angle, reshape=False)` with
 *    mode 'constant', cval 0 (order 0 is what SAM-LST uses; order 3 is available too).
 *  - `rot90` / `flip`: `np.rot90(m, k)` and `np.flip(m, axis)` on a 2-D array.
 *
 * Semantics reproduced (scipy 1.6 … 1.17, checked against the 1.10.1 fixtures):
 *  - output coordinate o maps to input coordinate o·zoom with zoom = (n_in−1)/(n_out−1) computed
 *    in float64 (zoom 1 when n_out = 1). A coordinate < 0 or > n_in−1 gives cval 0 — this includes
 *    float64 round-off: e.g. 512→224 maps the last row to 511.00000000000006, so scipy (and this
 *    port) returns a zero last row and column.
 *  - order 0: nearest index floor(c + 0.5) (ties round up).
 *  - order 3: the input is prefiltered into B-spline coefficients (gain, causal and anticausal
 *    recursion with pole √3−2 and the 'mirror' initialisation scipy uses for mode 'constant'),
 *    axis 0 then axis 1; interpolation reads the 4×4 coefficient window starting at floor(c)−1,
 *    with window indices outside the array mirrored (whole-sample symmetric); weights are scipy's
 *    `get_spline_interpolation_weights` (last weight = 1 − sum of the others); the 16 products are
 *    accumulated row-major as ((coeff·wy)·wx).
 *  - float32 inputs give float32 outputs (value rounded from the float64 result), Int32 inputs
 *    (labels) give Int32 outputs; order 3 on Int32 rounds half away from zero like scipy's cast.
 *  - rotate: matrix [[cosdg, sindg], [−sindg, cosdg]] (Cephes degree trig, exact at multiples of
 *    90°), offset = in_center − M·out_center, input coordinate = (o0·m00 + o1·m01) + offset.
 */

export type Plane = Float32Array | Int32Array;

function fail(op: string, msg: string): never {
  throw new Error(`${op}: ${msg}`);
}

function checkPlane(op: string, x: Plane, h: number, w: number): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1)
    fail(op, `invalid input size ${h}x${w}`);
  if (x.length !== h * w) fail(op, `input has ${x.length} values, expected ${h}x${w} = ${h * w}`);
}

function alloc<T extends Plane>(like: T, n: number): T {
  return (like instanceof Int32Array ? new Int32Array(n) : new Float32Array(n)) as T;
}

/** Store a float64 result the way scipy casts into the output dtype. */
function castInto(out: Plane, i: number, t: number): void {
  if (out instanceof Int32Array) {
    // CASE_INTERP_OUT_INT: t > 0 ? t + 0.5 : t − 0.5, then C truncation.
    out[i] = Math.trunc(t > 0 ? t + 0.5 : t - 0.5);
  } else {
    out[i] = t; // Float32Array stores round-to-nearest, like the C (float) cast.
  }
}

// ---------------------------------------------------------------------------- coordinate maps

/** scipy's float64 zoom factor for grid_mode=False. */
export function zoomFactor(nIn: number, nOut: number): number {
  return nOut - 1 === 0 ? 1 : (nIn - 1) / (nOut - 1);
}

/** Output size scipy.ndimage.zoom picks for a zoom factor: Python round(n·z) (ties to even). */
export function zoomOutputSize(n: number, factor: number): number {
  const v = n * factor;
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** mirror ('whole-sample symmetric') index mapping used for spline windows at the borders. */
function mirrorIndex(idx: number, len: number): number {
  if (len <= 1) return 0;
  const s2 = 2 * len - 2;
  if (idx < 0) {
    idx = s2 * Math.trunc(-idx / s2) + idx;
    idx = idx <= 1 - len ? idx + s2 : -idx;
  } else if (idx >= len) {
    idx -= s2 * Math.trunc(idx / s2);
    if (idx >= len) idx = s2 - idx;
  }
  return idx;
}

/** Cubic B-spline weights for coordinate c (window starts at floor(c) − 1). */
function cubicWeights(c: number, out: Float64Array, at: number): void {
  const x = c - Math.floor(c);
  const y = x;
  const z = 1.0 - x;
  const w1 = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
  const w2 = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
  const w0 = (z * z * z) / 6.0;
  let w3 = 1.0;
  w3 -= w0;
  w3 -= w1;
  w3 -= w2;
  out[at] = w0;
  out[at + 1] = w1;
  out[at + 2] = w2;
  out[at + 3] = w3;
}

// ---------------------------------------------------------------------------- spline prefilter

const POLE3 = -0.2679491924311227; // sqrt(3) − 2, the double scipy's ni_splines.c uses

/** In-place cubic B-spline prefilter of one line (scipy apply_filter, mirror init). */
function filterLine(c: Float64Array, n: number): void {
  if (n <= 1) return;
  const z = POLE3;
  const gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (let i = 0; i < n; i++) c[i]! *= gain;
  // _init_causal_mirror
  let zi = z;
  const zn1 = Math.pow(z, n - 1);
  c[0] = c[0]! + zn1 * c[n - 1]!;
  for (let i = 1; i < n - 1; i++) {
    c[0]! += zi * (c[i]! + zn1 * c[n - 1 - i]!);
    zi *= z;
  }
  c[0]! /= 1 - zn1 * zn1;
  for (let i = 1; i < n; i++) c[i]! += z * c[i - 1]!;
  // _init_anticausal_mirror
  c[n - 1] = ((z * c[n - 2]! + c[n - 1]!) * z) / (z * z - 1);
  for (let i = n - 2; i >= 0; i--) c[i] = z * (c[i + 1]! - c[i]!);
}

/** B-spline coefficients (float64) of a 2-D plane, order 3: `spline_filter(x, 3, mode='constant')`. */
export function splineFilter2d(x: ArrayLike<number>, h: number, w: number): Float64Array {
  const c = Float64Array.from(x);
  // axis 0 (columns)
  if (h > 1) {
    const line = new Float64Array(h);
    for (let j = 0; j < w; j++) {
      for (let i = 0; i < h; i++) line[i] = c[i * w + j]!;
      filterLine(line, h);
      for (let i = 0; i < h; i++) c[i * w + j] = line[i]!;
    }
  }
  // axis 1 (rows)
  if (w > 1) {
    const line = new Float64Array(w);
    for (let i = 0; i < h; i++) {
      const base = i * w;
      for (let j = 0; j < w; j++) line[j] = c[base + j]!;
      filterLine(line, w);
      for (let j = 0; j < w; j++) c[base + j] = line[j]!;
    }
  }
  return c;
}

// ---------------------------------------------------------------------------- zoom

interface AxisMap {
  /** −1 where the coordinate is outside the input (cval), else window start (order 3) / index (order 0). */
  valid: Uint8Array;
  /** order 0: source index; order 3: 4 source indices per output (mirrored at the borders). */
  idx: Int32Array;
  /** order 3: 4 weights per output. */
  wts: Float64Array;
}

function axisMap(nIn: number, nOut: number, order: 0 | 3): AxisMap {
  const zoom = zoomFactor(nIn, nOut);
  const taps = order === 0 ? 1 : 4;
  const valid = new Uint8Array(nOut);
  const idx = new Int32Array(nOut * taps);
  const wts = new Float64Array(order === 0 ? 0 : nOut * 4);
  for (let k = 0; k < nOut; k++) {
    const cc = k * zoom;
    if (cc < 0 || cc > nIn - 1) continue; // map_coordinate → −1 → constant
    valid[k] = 1;
    if (order === 0) {
      idx[k] = Math.floor(cc + 0.5);
    } else {
      const start = Math.floor(cc) - 1;
      for (let t = 0; t < 4; t++) idx[k * 4 + t] = mirrorIndex(start + t, nIn);
      cubicWeights(cc, wts, k * 4);
    }
  }
  return { valid, idx, wts };
}

/**
 * scipy.ndimage.zoom of a 2-D plane (row-major h×w) to oh×ow with order 0 or 3, mode 'constant',
 * cval 0, prefilter True, grid_mode False. Returns the same array type as the input.
 */
export function zoom2d<T extends Plane>(x: T, h: number, w: number, oh: number, ow: number, order: 0 | 3): T {
  checkPlane('zoom2d', x, h, w);
  if (!Number.isInteger(oh) || !Number.isInteger(ow) || oh < 1 || ow < 1)
    fail('zoom2d', `invalid output size ${oh}x${ow}`);
  if (order !== 0 && order !== 3) fail('zoom2d', `order ${String(order)} not supported (0 or 3)`);
  const out = alloc(x, oh * ow);
  // scipy's gh-20999 early exit: zoom factor 1 on both axes returns the input unchanged.
  if (oh === h && ow === w) {
    out.set(x);
    return out;
  }
  const my = axisMap(h, oh, order);
  const mx = axisMap(w, ow, order);
  if (order === 0) {
    for (let i = 0; i < oh; i++) {
      if (!my.valid[i]) continue;
      const row = my.idx[i]! * w;
      for (let j = 0; j < ow; j++) {
        if (!mx.valid[j]) continue;
        out[i * ow + j] = x[row + mx.idx[j]!]!;
      }
    }
    return out;
  }
  const c = splineFilter2d(x, h, w);
  const mi = mx.idx;
  const mw = mx.wts;
  const isInt = out instanceof Int32Array;
  for (let i = 0; i < oh; i++) {
    if (!my.valid[i]) continue;
    const iy = i * 4;
    const r0 = my.idx[iy]! * w;
    const r1 = my.idx[iy + 1]! * w;
    const r2 = my.idx[iy + 2]! * w;
    const r3 = my.idx[iy + 3]! * w;
    const y0 = my.wts[iy]!;
    const y1 = my.wts[iy + 1]!;
    const y2 = my.wts[iy + 2]!;
    const y3 = my.wts[iy + 3]!;
    const base = i * ow;
    for (let j = 0; j < ow; j++) {
      if (!mx.valid[j]) continue;
      const jx = j * 4;
      const c0 = mi[jx]!;
      const c1 = mi[jx + 1]!;
      const c2 = mi[jx + 2]!;
      const c3 = mi[jx + 3]!;
      const x0 = mw[jx]!;
      const x1 = mw[jx + 1]!;
      const x2 = mw[jx + 2]!;
      const x3 = mw[jx + 3]!;
      // scipy's order: rows outer, columns inner, each term (coeff·wy)·wx, accumulated left to right
      let t = c[r0 + c0]! * y0 * x0;
      t += c[r0 + c1]! * y0 * x1;
      t += c[r0 + c2]! * y0 * x2;
      t += c[r0 + c3]! * y0 * x3;
      t += c[r1 + c0]! * y1 * x0;
      t += c[r1 + c1]! * y1 * x1;
      t += c[r1 + c2]! * y1 * x2;
      t += c[r1 + c3]! * y1 * x3;
      t += c[r2 + c0]! * y2 * x0;
      t += c[r2 + c1]! * y2 * x1;
      t += c[r2 + c2]! * y2 * x2;
      t += c[r2 + c3]! * y2 * x3;
      t += c[r3 + c0]! * y3 * x0;
      t += c[r3 + c1]! * y3 * x1;
      t += c[r3 + c2]! * y3 * x2;
      t += c[r3 + c3]! * y3 * x3;
      if (isInt) castInto(out, base + j, t);
      else out[base + j] = t;
    }
  }
  return out;
}

/** zoom2d with scipy's factor form: output size round(h·fy) × round(w·fx) (Python rounding). */
export function zoomBy<T extends Plane>(
  x: T,
  h: number,
  w: number,
  fy: number,
  fx: number,
  order: 0 | 3,
): { data: T; h: number; w: number } {
  const oh = zoomOutputSize(h, fy);
  const ow = zoomOutputSize(w, fx);
  return { data: zoom2d(x, h, w, oh, ow, order), h: oh, w: ow };
}

/** Zoom every (h,w) slice of a (d,h,w) volume to (oh,ow), as SAM-LST's per-slice evaluation does. */
export function zoomSlices<T extends Plane>(
  x: T,
  d: number,
  h: number,
  w: number,
  oh: number,
  ow: number,
  order: 0 | 3,
): T {
  if (x.length !== d * h * w) fail('zoomSlices', `input has ${x.length} values, expected ${d}x${h}x${w}`);
  const out = alloc(x, d * oh * ow);
  for (let z = 0; z < d; z++) {
    const s = x.subarray(z * h * w, (z + 1) * h * w) as T;
    out.set(zoom2d(s, h, w, oh, ow, order), z * oh * ow);
  }
  return out;
}

// ---------------------------------------------------------------------------- rotate

const F64 = new Float64Array(1);
const U64 = new BigUint64Array(F64.buffer);

/** A finite double as m·2^e with m a BigInt. */
function decompose(x: number): { m: bigint; e: number } {
  F64[0] = x;
  const bits = U64[0]!;
  const neg = bits >> 63n === 1n;
  const ex = Number((bits >> 52n) & 0x7ffn);
  let m = bits & 0xfffffffffffffn;
  let e: number;
  if (ex === 0) e = -1074;
  else {
    m |= 1n << 52n;
    e = ex - 1075;
  }
  return { m: neg ? -m : m, e };
}

/** Correctly rounded a·b + c (IEEE fused multiply-add) for finite inputs. */
export function fma(a: number, b: number, c: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || !Number.isFinite(c)) return a * b + c;
  if (a === 0 || b === 0) return a * b + c;
  if (c === 0) return a * b;
  const A = decompose(a);
  const B = decompose(b);
  const C = decompose(c);
  let pm = A.m * B.m;
  let pe = A.e + B.e;
  let cm = C.m;
  let ce = C.e;
  const e = Math.min(pe, ce);
  pm <<= BigInt(pe - e);
  cm <<= BigInt(ce - e);
  pe = ce = e;
  const n = pm + cm;
  if (n === 0n) return 0;
  // Number(bigint) rounds to nearest (ties to even); shift the excess bits out first so the scale
  // by 2^e stays exact.
  const neg = n < 0n;
  let mag = neg ? -n : n;
  let ex = e;
  const bitLen = mag.toString(2).length;
  if (bitLen > 64) {
    const drop = bitLen - 64;
    const sticky = (mag & ((1n << BigInt(drop)) - 1n)) !== 0n ? 1n : 0n;
    mag = (mag >> BigInt(drop)) | sticky;
    ex += drop;
  }
  const r = Number(mag) * Math.pow(2, ex);
  return neg ? -r : r;
}

// Cephes sindg.c coefficients (decimal literals shortened to the doubles they denote).
const SINCOF = [
  1.5896230157221844e-10, -2.5050747762850355e-8, 2.7557313621385676e-6, -1.984126982958954e-4,
  8.333333333322118e-3, -1.666666666666663e-1,
];
const COSCOF = [
  1.1367817138204455e-11, -2.0875883375768363e-9, 2.7557315542981663e-7, -2.480158729361863e-5,
  1.3888888888880667e-3, -4.166666666666664e-2, 0.5,
];
const PI180 = 1.7453292519943295e-2;

function polevl(x: number, coef: readonly number[]): number {
  let ans = coef[0]!;
  for (let i = 1; i < coef.length; i++) ans = ans * x + coef[i]!;
  return ans;
}

/** Cephes sindg/cosdg (what scipy.special uses for ndimage.rotate). */
function degTrig(xIn: number, cos: boolean): number {
  let sign = 1;
  let x = xIn;
  if (x < 0) {
    x = -x;
    if (!cos) sign = -1;
  }
  if (x > 1.0e14) return 0.0;
  let y = Math.floor(x / 45.0);
  let z = Math.floor(y / 16);
  z = y - z * 16;
  let j = z | 0;
  if (j & 1) {
    j += 1;
    y += 1.0;
  }
  j &= 7;
  if (j > 3) {
    sign = -sign;
    j -= 4;
  }
  if (cos && j > 1) sign = -sign;
  z = x - y * 45.0;
  z *= PI180;
  const zz = z * z;
  const useCosPoly = cos ? !(j === 1 || j === 2) : j === 1 || j === 2;
  const r = useCosPoly ? 1.0 - zz * polevl(zz, COSCOF) : z + z * (zz * polevl(zz, SINCOF));
  return sign < 0 ? -r : r;
}

export const sindg = (x: number): number => degTrig(x, false);
export const cosdg = (x: number): number => degTrig(x, true);

/**
 * scipy.ndimage.rotate(x, angle, reshape=False, order, mode='constant', cval=0) of a 2-D plane
 * (axes (1,0)): rotation about the array centre, output size = input size.
 */
export function rotate2d<T extends Plane>(x: T, h: number, w: number, angleDeg: number, order: 0 | 3 = 0): T {
  checkPlane('rotate2d', x, h, w);
  if (order !== 0 && order !== 3) fail('rotate2d', `order ${String(order)} not supported (0 or 3)`);
  const c = cosdg(angleDeg);
  const s = sindg(angleDeg);
  const m00 = c;
  const m01 = s;
  const m10 = -s;
  const m11 = c;
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  // numpy computes M @ centre with a fused multiply-add (OpenBLAS gemv): fma(m_i0, c0, m_i1·c1).
  const off0 = cy - fma(m00, cy, m01 * cx);
  const off1 = cx - fma(m10, cy, m11 * cx);
  const out = alloc(x, h * w);
  const coeffs = order === 3 ? splineFilter2d(x, h, w) : null;
  const wy = new Float64Array(4);
  const wx = new Float64Array(4);
  const iy = new Int32Array(4);
  const ix = new Int32Array(4);
  for (let o0 = 0; o0 < h; o0++) {
    for (let o1 = 0; o1 < w; o1++) {
      let y = 0.0;
      y += o0 * m00;
      y += o1 * m01;
      y += off0;
      let xx = 0.0;
      xx += o0 * m10;
      xx += o1 * m11;
      xx += off1;
      if (y < 0 || y > h - 1 || xx < 0 || xx > w - 1) continue; // cval 0
      if (coeffs === null) {
        out[o0 * w + o1] = x[Math.floor(y + 0.5) * w + Math.floor(xx + 0.5)]!;
      } else {
        const sy = Math.floor(y) - 1;
        const sx = Math.floor(xx) - 1;
        for (let t = 0; t < 4; t++) {
          iy[t] = mirrorIndex(sy + t, h);
          ix[t] = mirrorIndex(sx + t, w);
        }
        cubicWeights(y, wy, 0);
        cubicWeights(xx, wx, 0);
        let t = 0.0;
        for (let a = 0; a < 4; a++)
          for (let b = 0; b < 4; b++) t += coeffs[iy[a]! * w + ix[b]!]! * wy[a]! * wx[b]!;
        castInto(out, o0 * w + o1, t);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------- rot90 / flip

/**
 * np.rot90(m, k) of an h×w plane (counter-clockwise, axes (0,1)); returns the data and its size
 * (w×h for odd k).
 */
export function rot90<T extends Plane>(
  x: T,
  h: number,
  w: number,
  k: number,
): { data: T; h: number; w: number } {
  checkPlane('rot90', x, h, w);
  if (!Number.isInteger(k)) fail('rot90', `k must be an integer, got ${k}`);
  const kk = ((k % 4) + 4) % 4;
  const out = alloc(x, h * w);
  if (kk === 0) {
    out.set(x);
    return { data: out, h, w };
  }
  if (kk === 2) {
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) out[i * w + j] = x[(h - 1 - i) * w + (w - 1 - j)]!;
    return { data: out, h, w };
  }
  // odd k: output is w×h
  for (let i = 0; i < w; i++) {
    for (let j = 0; j < h; j++) {
      // k=1: out[i,j] = m[j, w−1−i];  k=3: out[i,j] = m[h−1−j, i]
      out[i * h + j] = kk === 1 ? x[j * w + (w - 1 - i)]! : x[(h - 1 - j) * w + i]!;
    }
  }
  return { data: out, h: w, w: h };
}

/** np.flip(m, axis) of an h×w plane. */
export function flip<T extends Plane>(x: T, h: number, w: number, axis: 0 | 1): T {
  checkPlane('flip', x, h, w);
  if (axis !== 0 && axis !== 1) fail('flip', `axis must be 0 or 1, got ${String(axis)}`);
  const out = alloc(x, h * w);
  for (let i = 0; i < h; i++)
    for (let j = 0; j < w; j++)
      out[i * w + j] = axis === 0 ? x[(h - 1 - i) * w + j]! : x[i * w + (w - 1 - j)]!;
  return out;
}
