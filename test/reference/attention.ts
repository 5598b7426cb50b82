/**
 * Plain-loop CPU references (float64) for softmax and scaled dot-product attention with optional
 * decomposed relative-position bias (SAM ViT). Independent of the WGSL: logits and probabilities
 * are materialised explicitly and the softmax is the textbook max-subtracted one.
 */

/** Softmax over the last axis of a (rows, cols) row-major array. */
export function softmax(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp(x[r * cols + c]! - m);
      y[r * cols + c] = e;
      s += e;
    }
    for (let c = 0; c < cols; c++) y[r * cols + c]! /= s;
  }
  return y;
}

/** dx = y * (dy - sum(dy * y)) per row. */
export function softmaxBackward(
  y: ArrayLike<number>,
  dy: ArrayLike<number>,
  rows: number,
  cols: number,
): Float64Array {
  const dx = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let c = 0; c < cols; c++) dot += dy[r * cols + c]! * y[r * cols + c]!;
    for (let c = 0; c < cols; c++) dx[r * cols + c] = y[r * cols + c]! * (dy[r * cols + c]! - dot);
  }
  return dx;
}

/** Decomposed rel-pos tables: Rh (2gh-1, d), Rw (2gw-1, d); queries and keys on the same gh x gw grid. */
export interface RelPosRef {
  rh: ArrayLike<number>;
  rw: ArrayLike<number>;
  gh: number;
  gw: number;
}

export interface AttentionDims {
  BH: number;
  Lq: number;
  Lk: number;
  d: number;
  scale: number;
}

/** Logits (BH, Lq, Lk): scale*q.k + q.Rh[qy-ky+gh-1] + q.Rw[qx-kx+gw-1] (unscaled q in the rel terms). */
export function attentionLogits(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  dims: AttentionDims,
  rel?: RelPosRef,
): Float64Array {
  const { BH, Lq, Lk, d, scale } = dims;
  const s = new Float64Array(BH * Lq * Lk);
  for (let b = 0; b < BH; b++)
    for (let i = 0; i < Lq; i++)
      for (let j = 0; j < Lk; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(b * Lq + i) * d + c]! * k[(b * Lk + j) * d + c]!;
        let v = scale * dot;
        if (rel) {
          const qy = Math.floor(i / rel.gw);
          const qx = i % rel.gw;
          const ky = Math.floor(j / rel.gw);
          const kx = j % rel.gw;
          const rh = qy - ky + rel.gh - 1;
          const rw = qx - kx + rel.gw - 1;
          for (let c = 0; c < d; c++) {
            const qc = q[(b * Lq + i) * d + c]!;
            v += qc * rel.rh[rh * d + c]! + qc * rel.rw[rw * d + c]!;
          }
        }
        s[(b * Lq + i) * Lk + j] = v;
      }
  return s;
}

export interface AttentionOut {
  out: Float64Array;
  lse: Float64Array;
  p: Float64Array;
}

export function attention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dims: AttentionDims,
  rel?: RelPosRef,
): AttentionOut {
  const { BH, Lq, Lk, d } = dims;
  const s = attentionLogits(q, k, dims, rel);
  const p = softmax(s, BH * Lq, Lk);
  const lse = new Float64Array(BH * Lq);
  for (let r = 0; r < BH * Lq; r++) {
    let m = -Infinity;
    for (let j = 0; j < Lk; j++) m = Math.max(m, s[r * Lk + j]!);
    let z = 0;
    for (let j = 0; j < Lk; j++) z += Math.exp(s[r * Lk + j]! - m);
    lse[r] = m + Math.log(z);
  }
  const out = new Float64Array(BH * Lq * d);
  for (let b = 0; b < BH; b++)
    for (let i = 0; i < Lq; i++)
      for (let j = 0; j < Lk; j++) {
        const pij = p[(b * Lq + i) * Lk + j]!;
        for (let c = 0; c < d; c++) out[(b * Lq + i) * d + c]! += pij * v[(b * Lk + j) * d + c]!;
      }
  return { out, lse, p };
}

export interface AttentionGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  drh?: Float64Array;
  drw?: Float64Array;
}

/** Gradients of sum(out * dout) by the explicit chain rule through the materialised softmax. */
export function attentionBackward(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  dims: AttentionDims,
  rel?: RelPosRef,
): AttentionGrads {
  const { BH, Lq, Lk, d, scale } = dims;
  const { p } = attention(q, k, v, dims, rel);
  const dp = new Float64Array(BH * Lq * Lk);
  for (let b = 0; b < BH; b++)
    for (let i = 0; i < Lq; i++)
      for (let j = 0; j < Lk; j++) {
        let s = 0;
        for (let c = 0; c < d; c++) s += dout[(b * Lq + i) * d + c]! * v[(b * Lk + j) * d + c]!;
        dp[(b * Lq + i) * Lk + j] = s;
      }
  const ds = softmaxBackward(p, dp, BH * Lq, Lk);
  const dq = new Float64Array(BH * Lq * d);
  const dk = new Float64Array(BH * Lk * d);
  const dv = new Float64Array(BH * Lk * d);
  const drh = rel ? new Float64Array((2 * rel.gh - 1) * d) : undefined;
  const drw = rel ? new Float64Array((2 * rel.gw - 1) * d) : undefined;
  for (let b = 0; b < BH; b++)
    for (let i = 0; i < Lq; i++)
      for (let j = 0; j < Lk; j++) {
        const g = ds[(b * Lq + i) * Lk + j]!;
        const pij = p[(b * Lq + i) * Lk + j]!;
        for (let c = 0; c < d; c++) {
          const qi = q[(b * Lq + i) * d + c]!;
          const kj = k[(b * Lk + j) * d + c]!;
          dq[(b * Lq + i) * d + c]! += scale * g * kj;
          dk[(b * Lk + j) * d + c]! += scale * g * qi;
          dv[(b * Lk + j) * d + c]! += pij * dout[(b * Lq + i) * d + c]!;
        }
        if (rel && drh && drw) {
          const rh = Math.floor(i / rel.gw) - Math.floor(j / rel.gw) + rel.gh - 1;
          const rw = (i % rel.gw) - (j % rel.gw) + rel.gw - 1;
          for (let c = 0; c < d; c++) {
            const qi = q[(b * Lq + i) * d + c]!;
            dq[(b * Lq + i) * d + c]! += g * (rel.rh[rh * d + c]! + rel.rw[rw * d + c]!);
            drh[rh * d + c]! += g * qi;
            drw[rw * d + c]! += g * qi;
          }
        }
      }
  return drh && drw ? { dq, dk, dv, drh, drw } : { dq, dk, dv };
}

export interface VitParamsRef {
  qkvW: ArrayLike<number>; // (3C, C)
  qkvB: ArrayLike<number>; // (3C)
  projW: ArrayLike<number>; // (C, C)
  projB: ArrayLike<number>; // (C)
  rh: ArrayLike<number>; // (2gh-1, hd)
  rw: ArrayLike<number>; // (2gw-1, hd)
}

/**
 * SAM ViT attention on x (B, H, W, C) NHWC, written from the model description: zero-pad to a
 * multiple of the window, per window (or the whole grid when window = 0) qkv = x W^T + b, heads,
 * attention with decomposed rel-pos, heads merged, proj, tokens outside the image dropped.
 */
export function vitAttention(
  x: ArrayLike<number>,
  [B, H, W, C]: readonly [number, number, number, number],
  p: VitParamsRef,
  heads: number,
  window: number,
): Float64Array {
  const hd = C / heads;
  const gh = window > 0 ? window : H;
  const gw = window > 0 ? window : W;
  const nwy = window > 0 ? Math.ceil(H / window) : 1;
  const nwx = window > 0 ? Math.ceil(W / window) : 1;
  const L = gh * gw;
  const out = new Float64Array(B * H * W * C);
  for (let b = 0; b < B; b++)
    for (let wy = 0; wy < nwy; wy++)
      for (let wx = 0; wx < nwx; wx++) {
        const pos = (t: number): [number, number] => [wy * gh + Math.floor(t / gw), wx * gw + (t % gw)];
        const inside = (t: number) => {
          const [y, xx] = pos(t);
          return y < H && xx < W;
        };
        const qkv = new Float64Array(L * 3 * C);
        for (let t = 0; t < L; t++) {
          const [y, xx] = pos(t);
          for (let o = 0; o < 3 * C; o++) {
            let s = p.qkvB[o]!;
            if (inside(t))
              for (let c = 0; c < C; c++) s += x[((b * H + y) * W + xx) * C + c]! * p.qkvW[o * C + c]!;
            qkv[t * 3 * C + o] = s;
          }
        }
        const merged = new Float64Array(L * C);
        for (let h = 0; h < heads; h++) {
          const part = (which: number) => {
            const a = new Float64Array(L * hd);
            for (let t = 0; t < L; t++)
              for (let c = 0; c < hd; c++) a[t * hd + c] = qkv[t * 3 * C + which * C + h * hd + c]!;
            return a;
          };
          const o = attention(
            part(0),
            part(1),
            part(2),
            { BH: 1, Lq: L, Lk: L, d: hd, scale: hd ** -0.5 },
            {
              rh: p.rh,
              rw: p.rw,
              gh,
              gw,
            },
          ).out;
          for (let t = 0; t < L; t++)
            for (let c = 0; c < hd; c++) merged[t * C + h * hd + c] = o[t * hd + c]!;
        }
        for (let t = 0; t < L; t++) {
          if (!inside(t)) continue;
          const [y, xx] = pos(t);
          for (let o = 0; o < C; o++) {
            let s = p.projB[o]!;
            for (let c = 0; c < C; c++) s += merged[t * C + c]! * p.projW[o * C + c]!;
            out[((b * H + y) * W + xx) * C + o] = s;
          }
        }
      }
  return out;
}
