/**
 * Plain-loop CPU reference for NCHW conv2d and its gradients, in float64. Written from the
 * definition (PyTorch semantics: cross-correlation, zero padding, weight (Cout, Cin/groups, kh, kw)),
 * independent of the WGSL.
 */

export interface ConvOpts {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

export interface ConvShapes {
  x: [number, number, number, number];
  w: [number, number, number, number];
}

export function outShape(s: ConvShapes, o: ConvOpts): [number, number, number, number] {
  const [N, , H, W] = s.x;
  const [Cout, , kh, kw] = s.w;
  const Ho = Math.floor((H + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0]) + 1;
  const Wo = Math.floor((W + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1]) + 1;
  return [N, Cout, Ho, Wo];
}

/**
 * Visits every (output element, weight element, input element) triple that contributes:
 * f(yIndex, wIndex, xIndex, co).
 */
function forEachTerm(
  s: ConvShapes,
  o: ConvOpts,
  f: (yi: number, wi: number, xi: number, co: number) => void,
): void {
  const [N, Cin, H, W] = s.x;
  const [Cout, CinG, kh, kw] = s.w;
  const [, , Ho, Wo] = outShape(s, o);
  const G = o.groups;
  const CoutG = Cout / G;
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++) {
      const g = Math.floor(co / CoutG);
      for (let oy = 0; oy < Ho; oy++)
        for (let ox = 0; ox < Wo; ox++) {
          const yi = ((n * Cout + co) * Ho + oy) * Wo + ox;
          for (let cig = 0; cig < CinG; cig++) {
            const ci = g * CinG + cig;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * o.stride[0] - o.padding[0] + ky * o.dilation[0];
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * o.stride[1] - o.padding[1] + kx * o.dilation[1];
                if (ix < 0 || ix >= W) continue;
                const wi = ((co * CinG + cig) * kh + ky) * kw + kx;
                const xi = ((n * Cin + ci) * H + iy) * W + ix;
                f(yi, wi, xi, co);
              }
            }
          }
        }
    }
}

export function conv2d(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  s: ConvShapes,
  o: ConvOpts,
): Float64Array {
  const os = outShape(s, o);
  const y = new Float64Array(os[0] * os[1] * os[2] * os[3]);
  if (b) {
    const P = os[2] * os[3];
    for (let i = 0; i < y.length; i++) y[i] = b[Math.floor(i / P) % os[1]]!;
  }
  forEachTerm(s, o, (yi, wi, xi) => {
    y[yi]! += w[wi]! * x[xi]!;
  });
  return y;
}

/** Gradients of sum(y * dy) with respect to x, w and the bias. */
export function conv2dBackward(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: ConvShapes,
  o: ConvOpts,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = new Float64Array(s.x[0] * s.x[1] * s.x[2] * s.x[3]);
  const dw = new Float64Array(s.w[0] * s.w[1] * s.w[2] * s.w[3]);
  const db = new Float64Array(s.w[0]);
  const os = outShape(s, o);
  const P = os[2] * os[3];
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / P) % os[1]]! += dy[i]!;
  forEachTerm(s, o, (yi, wi, xi) => {
    dx[xi]! += w[wi]! * dy[yi]!;
    dw[wi]! += x[xi]! * dy[yi]!;
  });
  return { dx, dw, db };
}
