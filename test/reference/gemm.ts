/** Plain-loop CPU references for GEMM, matmul and linear, in float64. Independent of the WGSL. */
import { erf, gelu } from './elementwise.js';

export type Act = 'none' | 'relu' | 'gelu';

export function applyAct(v: number, act: Act): number {
  if (act === 'relu') return Math.max(v, 0);
  if (act === 'gelu') return gelu(v);
  return v;
}

export interface GemmRefArgs {
  a: ArrayLike<number>;
  b: ArrayLike<number>;
  M: number;
  N: number;
  K: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  /** Element strides between batch items (default M*K, K*N; 0 broadcasts). */
  aBatchStride?: number;
  bBatchStride?: number;
  bias?: ArrayLike<number> | null;
  alpha?: number;
  act?: Act;
  /** Only these rows of each batch item are computed (others stay 0); default all. */
  rows?: readonly number[];
}

/** C[z] = act(alpha * op(A[z]) . op(B[z]) + bias), shape (batch, M, N). */
export function gemmRef(g: GemmRefArgs): Float64Array {
  const { M, N, K } = g;
  const batch = g.batch ?? 1;
  const aBs = g.aBatchStride ?? M * K;
  const bBs = g.bBatchStride ?? K * N;
  const alpha = g.alpha ?? 1;
  const act = g.act ?? 'none';
  const out = new Float64Array(batch * M * N);
  const rows = g.rows ?? [...Array(M).keys()];
  for (let z = 0; z < batch; z++) {
    for (const m of rows) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = g.a[z * aBs + (g.transA ? k * M + m : m * K + k)]!;
          const bv = g.b[z * bBs + (g.transB ? n * K + k : k * N + n)]!;
          s += av * bv;
        }
        let v = alpha * s;
        if (g.bias) v += g.bias[n]!;
        out[(z * M + m) * N + n] = applyAct(v, act);
      }
    }
  }
  return out;
}

/** Transpose of a row-major (rows, cols) matrix. */
export function transpose(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const o = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = x[r * cols + c]!;
  return o;
}

/**
 * torch.matmul for rank >= 2 operands whose leading (batch) dims are equal, or where one operand is
 * rank 2 (broadcast over the other's batch). transA/transB transpose the last two dims first.
 */
export function matmulRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  transA = false,
  transB = false,
): { data: Float64Array; shape: number[] } {
  const ar = aShape.length;
  const br = bShape.length;
  const [ra, ca] = [aShape[ar - 2]!, aShape[ar - 1]!];
  const [rb, cb] = [bShape[br - 2]!, bShape[br - 1]!];
  const M = transA ? ca : ra;
  const K = transA ? ra : ca;
  const N = transB ? rb : cb;
  const lead = ar >= br ? aShape.slice(0, -2) : bShape.slice(0, -2);
  const batch = lead.reduce((x, y) => x * y, 1);
  const aItem = ra * ca;
  const bItem = rb * cb;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = ar === 2 ? 0 : z * aItem;
    const bo = br === 2 ? 0 : z * bItem;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ao + (transA ? k * ca + m : m * ca + k)]!;
          const bv = b[bo + (transB ? n * cb + k : k * cb + n)]!;
          s += av * bv;
        }
        out[(z * M + m) * N + n] = s;
      }
  }
  return { data: out, shape: [...lead, M, N] };
}

/** nn.Linear: x (..., in), w (out, in), bias (out) -> (..., out), then act. */
export function linearRef(
  x: ArrayLike<number>,
  rows: number,
  inF: number,
  w: ArrayLike<number>,
  outF: number,
  bias: ArrayLike<number> | null,
  act: Act = 'none',
): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = applyAct(s, act);
    }
  return y;
}

/** Sum of y * dy for a linear layer: the scalar whose gradients the backward tests check. */
export function linearLoss(
  x: ArrayLike<number>,
  rows: number,
  inF: number,
  w: ArrayLike<number>,
  outF: number,
  bias: ArrayLike<number> | null,
  dy: ArrayLike<number>,
  act: Act = 'none',
): number {
  const y = linearRef(x, rows, inF, w, outF, bias, act);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
  return s;
}

/**
 * Analytic gradients of sum(linear(x, w, b, act) * dy): dx (rows, in), dw (out, in), db (out).
 * Written from the chain rule in plain loops; checked against finite differences in the tests.
 */
export function linearGradRef(
  x: ArrayLike<number>,
  rows: number,
  inF: number,
  w: ArrayLike<number>,
  outF: number,
  bias: ArrayLike<number> | null,
  dy: ArrayLike<number>,
  act: Act = 'none',
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  // Pre-activation z and dz = dy * act'(z).
  const dz = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      const g = dy[r * outF + o]!;
      dz[r * outF + o] = g * actGrad(s, act);
    }
  const dx = new Float64Array(rows * inF);
  const dw = new Float64Array(outF * inF);
  const db = new Float64Array(outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      const g = dz[r * outF + o]!;
      db[o] = db[o]! + g;
      for (let i = 0; i < inF; i++) {
        dx[r * inF + i] = dx[r * inF + i]! + g * w[o * inF + i]!;
        dw[o * inF + i] = dw[o * inF + i]! + g * x[r * inF + i]!;
      }
    }
  return { dx, dw, db };
}

function actGrad(z: number, act: Act): number {
  if (act === 'relu') return z > 0 ? 1 : 0;
  if (act === 'gelu') {
    const cdf = 0.5 * (1 + erf(z / Math.SQRT2));
    return cdf + (z * Math.exp(-0.5 * z * z)) / Math.sqrt(2 * Math.PI);
  }
  return 1;
}

/**
 * Gradients of sum(matmulRef(a, b, transA, transB) * dy) with respect to a and b, accumulated
 * element by element from the definition (broadcast operands collect every batch item).
 */
export function matmulGradRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  dy: ArrayLike<number>,
  transA = false,
  transB = false,
): { da: Float64Array; db: Float64Array } {
  const ar = aShape.length;
  const br = bShape.length;
  const [ra, ca] = [aShape[ar - 2]!, aShape[ar - 1]!];
  const [rb, cb] = [bShape[br - 2]!, bShape[br - 1]!];
  const M = transA ? ca : ra;
  const K = transA ? ra : ca;
  const N = transB ? rb : cb;
  const lead = ar >= br ? aShape.slice(0, -2) : bShape.slice(0, -2);
  const batch = lead.reduce((x, y) => x * y, 1);
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  for (let z = 0; z < batch; z++) {
    const ao = ar === 2 ? 0 : z * ra * ca;
    const bo = br === 2 ? 0 : z * rb * cb;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        const g = dy[(z * M + m) * N + n]!;
        for (let k = 0; k < K; k++) {
          const ia = ao + (transA ? k * ca + m : m * ca + k);
          const ib = bo + (transB ? n * cb + k : k * cb + n);
          da[ia] = da[ia]! + g * b[ib]!;
          db[ib] = db[ib]! + g * a[ia]!;
        }
      }
  }
  return { da, db };
}
