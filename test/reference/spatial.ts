/**
 * Plain-loop CPU references (float64) for the spatial ops: ConvTranspose2d (padding 0), MaxPool2d
 * with -inf padding and first-max argmax, and bilinear resize with align_corners=False. Written
 * from the PyTorch definitions, independent of the WGSL: forward passes scatter or gather in the
 * textbook order and the backward passes scatter (the kernels gather).
 */

export type Arr = ArrayLike<number>;

// ------------------------------------------------------------------ ConvTranspose2d

export interface ConvT {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  S: number;
}

export function convTOut(g: ConvT): [number, number] {
  return [(g.H - 1) * g.S + g.KH, (g.W - 1) * g.S + g.KW];
}

/** y[n,o,y*S+a,x*S+b] += x[n,i,y,x] * w[i,o,a,b], plus bias[o]. */
export function convTranspose2d(x: Arr, w: Arr, bias: Arr | null, g: ConvT): Float64Array {
  const [Ho, Wo] = convTOut(g);
  const y = new Float64Array(g.N * g.Cout * Ho * Wo);
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.Cout; o++) {
      const base = (n * g.Cout + o) * Ho * Wo;
      if (bias) for (let k = 0; k < Ho * Wo; k++) y[base + k] = bias[o]!;
      for (let i = 0; i < g.Cin; i++)
        for (let yy = 0; yy < g.H; yy++)
          for (let xx = 0; xx < g.W; xx++) {
            const v = x[((n * g.Cin + i) * g.H + yy) * g.W + xx]!;
            for (let a = 0; a < g.KH; a++)
              for (let b = 0; b < g.KW; b++)
                y[base + (yy * g.S + a) * Wo + xx * g.S + b]! +=
                  v * w[((i * g.Cout + o) * g.KH + a) * g.KW + b]!;
          }
    }
  return y;
}

/** Gradients of sum(y * dy): dx, dw, db. */
export function convTranspose2dBackward(
  x: Arr,
  w: Arr,
  dy: Arr,
  g: ConvT,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const [Ho, Wo] = convTOut(g);
  const dx = new Float64Array(g.N * g.Cin * g.H * g.W);
  const dw = new Float64Array(g.Cin * g.Cout * g.KH * g.KW);
  const db = new Float64Array(g.Cout);
  for (let n = 0; n < g.N; n++)
    for (let o = 0; o < g.Cout; o++) {
      const base = (n * g.Cout + o) * Ho * Wo;
      for (let k = 0; k < Ho * Wo; k++) db[o]! += dy[base + k]!;
      for (let i = 0; i < g.Cin; i++)
        for (let yy = 0; yy < g.H; yy++)
          for (let xx = 0; xx < g.W; xx++) {
            const xi = ((n * g.Cin + i) * g.H + yy) * g.W + xx;
            for (let a = 0; a < g.KH; a++)
              for (let b = 0; b < g.KW; b++) {
                const d = dy[base + (yy * g.S + a) * Wo + xx * g.S + b]!;
                const wi = ((i * g.Cout + o) * g.KH + a) * g.KW + b;
                dx[xi]! += d * w[wi]!;
                dw[wi]! += d * x[xi]!;
              }
          }
    }
  return { dx, dw, db };
}

// ------------------------------------------------------------------ MaxPool2d

export interface Pool {
  N: number;
  C: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  SH: number;
  SW: number;
  PH: number;
  PW: number;
}

export function poolOut(g: Pool): [number, number] {
  return [Math.floor((g.H + 2 * g.PH - g.KH) / g.SH) + 1, Math.floor((g.W + 2 * g.PW - g.KW) / g.SW) + 1];
}

/**
 * PyTorch max_pool2d: windows clipped to the image (padding never wins), scanned row by row; the
 * first strict maximum wins (a NaN always replaces the running max). idx = y*W + x in the plane.
 */
export function maxPool2d(x: Arr, g: Pool): { y: Float64Array; idx: Int32Array } {
  const [Ho, Wo] = poolOut(g);
  const y = new Float64Array(g.N * g.C * Ho * Wo);
  const idx = new Int32Array(y.length);
  for (let p = 0; p < g.N * g.C; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        const y0 = Math.max(oy * g.SH - g.PH, 0);
        const y1 = Math.min(oy * g.SH - g.PH + g.KH, g.H);
        const x0 = Math.max(ox * g.SW - g.PW, 0);
        const x1 = Math.min(ox * g.SW - g.PW + g.KW, g.W);
        let best = -Infinity;
        let at = y0 * g.W + x0;
        for (let yy = y0; yy < y1; yy++)
          for (let xx = x0; xx < x1; xx++) {
            const v = x[p * g.H * g.W + yy * g.W + xx]!;
            if (v > best || Number.isNaN(v)) {
              best = v;
              at = yy * g.W + xx;
            }
          }
        const o = (p * Ho + oy) * Wo + ox;
        y[o] = best;
        idx[o] = at;
      }
  return { y, idx };
}

/** dx[argmax] += dy, scattered in output order. */
export function maxPool2dBackward(idx: Int32Array, dy: Arr, g: Pool): Float64Array {
  const [Ho, Wo] = poolOut(g);
  const dx = new Float64Array(g.N * g.C * g.H * g.W);
  for (let p = 0; p < g.N * g.C; p++)
    for (let o = 0; o < Ho * Wo; o++) dx[p * g.H * g.W + idx[p * Ho * Wo + o]!]! += dy[p * Ho * Wo + o]!;
  return dx;
}

// ------------------------------------------------------------------ bilinear resize

/**
 * Per-axis source taps of F.interpolate(bilinear, align_corners=False): (i0, i1, l0, l1) per output.
 * The scale in/out is rounded to f32 as PyTorch computes it for f32 tensors; the rest is float64.
 */
export function linearTaps(
  inSize: number,
  outSize: number,
): { i0: number; i1: number; l0: number; l1: number }[] {
  const scale = Math.fround(inSize / outSize);
  const taps = [];
  for (let o = 0; o < outSize; o++) {
    const src = Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    taps.push({ i0, i1, l0: 1 - l1, l1 });
  }
  return taps;
}

export function bilinear(x: Arr, planes: number, H: number, W: number, Ho: number, Wo: number): Float64Array {
  const ty = linearTaps(H, Ho);
  const tx = linearTaps(W, Wo);
  const y = new Float64Array(planes * Ho * Wo);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        const a = ty[oy]!;
        const b = tx[ox]!;
        const at = (yy: number, xx: number) => x[(p * H + yy) * W + xx]!;
        y[(p * Ho + oy) * Wo + ox] =
          a.l0 * (b.l0 * at(a.i0, b.i0) + b.l1 * at(a.i0, b.i1)) +
          a.l1 * (b.l0 * at(a.i1, b.i0) + b.l1 * at(a.i1, b.i1));
      }
  return y;
}

/** Scatter formulation of the bilinear backward (as PyTorch's CPU kernel does). */
export function bilinearBackward(
  dy: Arr,
  planes: number,
  H: number,
  W: number,
  Ho: number,
  Wo: number,
): Float64Array {
  const ty = linearTaps(H, Ho);
  const tx = linearTaps(W, Wo);
  const dx = new Float64Array(planes * H * W);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < Ho; oy++)
      for (let ox = 0; ox < Wo; ox++) {
        const g = dy[(p * Ho + oy) * Wo + ox]!;
        const a = ty[oy]!;
        const b = tx[ox]!;
        const add = (yy: number, xx: number, v: number) => (dx[(p * H + yy) * W + xx]! += v);
        add(a.i0, b.i0, a.l0 * b.l0 * g);
        add(a.i0, b.i1, a.l0 * b.l1 * g);
        add(a.i1, b.i0, a.l1 * b.l0 * g);
        add(a.i1, b.i1, a.l1 * b.l1 * g);
      }
  return dx;
}

/** sum(y * dy), for finite differences of the references. */
export function dot(a: Arr, b: Arr): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
