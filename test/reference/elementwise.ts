/** Plain-loop CPU references for pointwise ops, in float64. Independent of the WGSL. */

export function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction.
  const ax = Math.abs(x);
  let r: number;
  if (ax < 2.5) {
    // Maclaurin series.
    let term = ax;
    let s = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      s += term / (2 * n + 1);
    }
    r = (2 / Math.sqrt(Math.PI)) * s;
  } else {
    // Continued fraction for erfc.
    let f = 0;
    for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
    r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  }
  return x < 0 ? -r : r;
}

export const relu = (x: number) => Math.max(x, 0);
export const gelu = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluGrad = (x: number) =>
  0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
export const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function map(a: ArrayLike<number>, f: (v: number) => number): Float64Array {
  const o = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) o[i] = f(a[i]!);
  return o;
}

/** Numpy-broadcast binary op on row-major arrays. */
export function broadcastBinary(
  a: ArrayLike<number>,
  as: number[],
  b: ArrayLike<number>,
  bs: number[],
  f: (x: number, y: number) => number,
): { data: Float64Array; shape: number[] } {
  const r = Math.max(as.length, bs.length);
  const pa = [...new Array<number>(r - as.length).fill(1), ...as];
  const pb = [...new Array<number>(r - bs.length).fill(1), ...bs];
  const shape = pa.map((d, i) => Math.max(d, pb[i]!));
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < n; o++) {
    let rem = o;
    for (let d = r - 1; d >= 0; d--) {
      idx[d] = rem % shape[d]!;
      rem = Math.floor(rem / shape[d]!);
    }
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < r; d++) {
      ia = ia * pa[d]! + (pa[d] === 1 ? 0 : idx[d]!);
      ib = ib * pb[d]! + (pb[d] === 1 ? 0 : idx[d]!);
    }
    out[o] = f(a[ia]!, b[ib]!);
  }
  return { data: out, shape };
}

/** Sums `x` (shape `xs`) down to broadcast-compatible `target`. */
export function sumTo(x: ArrayLike<number>, xs: number[], target: number[]): Float64Array {
  const r = xs.length;
  const pt = [...new Array<number>(r - target.length).fill(1), ...target];
  const n = pt.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < x.length; o++) {
    let rem = o;
    for (let d = r - 1; d >= 0; d--) {
      idx[d] = rem % xs[d]!;
      rem = Math.floor(rem / xs[d]!);
    }
    let it = 0;
    for (let d = 0; d < r; d++) it = it * pt[d]! + (pt[d] === 1 ? 0 : idx[d]!);
    out[it]! += x[o]!;
  }
  return out;
}

/** Generic permute of a row-major array. */
export function permute(x: ArrayLike<number>, shape: number[], perm: number[]): Float64Array {
  const r = shape.length;
  const oshape = perm.map((p) => shape[p]!);
  const st = new Array<number>(r);
  let acc = 1;
  for (let d = r - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d]!;
  }
  const out = new Float64Array(x.length);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < x.length; o++) {
    let rem = o;
    for (let d = r - 1; d >= 0; d--) {
      idx[d] = rem % oshape[d]!;
      rem = Math.floor(rem / oshape[d]!);
    }
    let src = 0;
    for (let d = 0; d < r; d++) src += idx[d]! * st[perm[d]!]!;
    out[o] = x[src]!;
  }
  return out;
}

/**
 * Strided read (the gather kernel's contract): output coordinate c (row-major over dims) reads
 * x[offset + sum_d (c_d + starts_d) * strides_d] when every c_d + starts_d lies in [0, extents_d),
 * else 0.
 */
export function gather(
  x: ArrayLike<number>,
  g: { dims: number[]; strides: number[]; starts: number[]; extents: number[]; offset?: number },
): Float64Array {
  const r = g.dims.length;
  const n = g.dims.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const c = new Array<number>(r).fill(0);
  for (let o = 0; o < n; o++) {
    let rem = o;
    for (let d = r - 1; d >= 0; d--) {
      c[d] = rem % g.dims[d]!;
      rem = Math.floor(rem / g.dims[d]!);
    }
    let src = g.offset ?? 0;
    let inside = true;
    for (let d = 0; d < r; d++) {
      const s = c[d]! + g.starts[d]!;
      if (s < 0 || s >= g.extents[d]!) inside = false;
      src += s * g.strides[d]!;
    }
    out[o] = inside ? x[src]! : 0;
  }
  return out;
}
