/**
 * Plain-loop CPU references for the normalisation ops, in float64, written from the PyTorch
 * definitions (not from the WGSL): LayerNorm over the last dim, SAM's LayerNorm2d (over C of NCHW),
 * BatchNorm2d in train mode (batch stats, biased var; running stats updated with the unbiased var)
 * and eval mode. Backward functions give the gradients of sum(y * dy).
 */
type Arr = ArrayLike<number>;

export interface NormGrads {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

// ------------------------------------------------------------------ LayerNorm over the last dim

export function layerNorm(x: Arr, w: Arr, b: Arr, rows: number, D: number, eps: number): Float64Array {
  const y = new Float64Array(rows * D);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let k = 0; k < D; k++) mean += x[r * D + k]!;
    mean /= D;
    let v = 0;
    for (let k = 0; k < D; k++) v += (x[r * D + k]! - mean) ** 2;
    v /= D;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let k = 0; k < D; k++) y[r * D + k] = (x[r * D + k]! - mean) * rstd * w[k]! + b[k]!;
  }
  return y;
}

export function layerNormBackward(x: Arr, w: Arr, dy: Arr, rows: number, D: number, eps: number): NormGrads {
  const dx = new Float64Array(rows * D);
  const dw = new Float64Array(D);
  const db = new Float64Array(D);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let k = 0; k < D; k++) mean += x[r * D + k]!;
    mean /= D;
    let v = 0;
    for (let k = 0; k < D; k++) v += (x[r * D + k]! - mean) ** 2;
    v /= D;
    const rstd = 1 / Math.sqrt(v + eps);
    let sg = 0;
    let sgx = 0;
    for (let k = 0; k < D; k++) {
      const xh = (x[r * D + k]! - mean) * rstd;
      const g = dy[r * D + k]! * w[k]!;
      sg += g;
      sgx += g * xh;
      dw[k]! += dy[r * D + k]! * xh;
      db[k]! += dy[r * D + k]!;
    }
    for (let k = 0; k < D; k++) {
      const xh = (x[r * D + k]! - mean) * rstd;
      const g = dy[r * D + k]! * w[k]!;
      dx[r * D + k] = rstd * (g - sg / D - (xh * sgx) / D);
    }
  }
  return { dx, dw, db };
}

// ------------------------------------------------------------------ LayerNorm2d (over C of NCHW)

export function layerNorm2d(
  x: Arr,
  w: Arr,
  b: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(N * C * HW);
  for (let n = 0; n < N; n++)
    for (let p = 0; p < HW; p++) {
      const at = (c: number) => (n * C + c) * HW + p;
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[at(c)]!;
      mean /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[at(c)]! - mean) ** 2;
      v /= C;
      const rstd = 1 / Math.sqrt(v + eps);
      for (let c = 0; c < C; c++) y[at(c)] = (x[at(c)]! - mean) * rstd * w[c]! + b[c]!;
    }
  return y;
}

export function layerNorm2dBackward(
  x: Arr,
  w: Arr,
  dy: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
): NormGrads {
  const dx = new Float64Array(N * C * HW);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let n = 0; n < N; n++)
    for (let p = 0; p < HW; p++) {
      const at = (c: number) => (n * C + c) * HW + p;
      let mean = 0;
      for (let c = 0; c < C; c++) mean += x[at(c)]!;
      mean /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[at(c)]! - mean) ** 2;
      v /= C;
      const rstd = 1 / Math.sqrt(v + eps);
      let sg = 0;
      let sgx = 0;
      for (let c = 0; c < C; c++) {
        const xh = (x[at(c)]! - mean) * rstd;
        const g = dy[at(c)]! * w[c]!;
        sg += g;
        sgx += g * xh;
        dw[c]! += dy[at(c)]! * xh;
        db[c]! += dy[at(c)]!;
      }
      for (let c = 0; c < C; c++) {
        const xh = (x[at(c)]! - mean) * rstd;
        dx[at(c)] = rstd * (dy[at(c)]! * w[c]! - sg / C - (xh * sgx) / C);
      }
    }
  return { dx, dw, db };
}

// ------------------------------------------------------------------ BatchNorm2d

/** Per-channel batch mean and biased / unbiased variance of NCHW x. */
export function channelStats(
  x: Arr,
  N: number,
  C: number,
  HW: number,
): { mean: Float64Array; varBiased: Float64Array; varUnbiased: Float64Array } {
  const mean = new Float64Array(C);
  const varBiased = new Float64Array(C);
  const varUnbiased = new Float64Array(C);
  const M = N * HW;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < HW; p++) s += x[(n * C + c) * HW + p]!;
    const m = s / M;
    let q = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < HW; p++) q += (x[(n * C + c) * HW + p]! - m) ** 2;
    mean[c] = m;
    varBiased[c] = q / M;
    varUnbiased[c] = M > 1 ? q / (M - 1) : NaN;
  }
  return { mean, varBiased, varUnbiased };
}

export function batchNormTrain(
  x: Arr,
  w: Arr,
  b: Arr,
  rm: Arr,
  rv: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
  momentum: number,
): { y: Float64Array; rmAfter: Float64Array; rvAfter: Float64Array } {
  const { mean, varBiased, varUnbiased } = channelStats(x, N, C, HW);
  const y = new Float64Array(N * C * HW);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const rstd = 1 / Math.sqrt(varBiased[c]! + eps);
      for (let p = 0; p < HW; p++) {
        const i = (n * C + c) * HW + p;
        y[i] = (x[i]! - mean[c]!) * rstd * w[c]! + b[c]!;
      }
    }
  const rmAfter = new Float64Array(C);
  const rvAfter = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    rmAfter[c] = (1 - momentum) * rm[c]! + momentum * mean[c]!;
    rvAfter[c] = (1 - momentum) * rv[c]! + momentum * varUnbiased[c]!;
  }
  return { y, rmAfter, rvAfter };
}

export function batchNormTrainBackward(
  x: Arr,
  w: Arr,
  dy: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
): NormGrads {
  const { mean, varBiased } = channelStats(x, N, C, HW);
  const M = N * HW;
  const dx = new Float64Array(N * C * HW);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const rstd = 1 / Math.sqrt(varBiased[c]! + eps);
    let sdy = 0;
    let sdyxh = 0;
    for (let n = 0; n < N; n++)
      for (let p = 0; p < HW; p++) {
        const i = (n * C + c) * HW + p;
        sdy += dy[i]!;
        sdyxh += dy[i]! * (x[i]! - mean[c]!) * rstd;
      }
    dw[c] = sdyxh;
    db[c] = sdy;
    for (let n = 0; n < N; n++)
      for (let p = 0; p < HW; p++) {
        const i = (n * C + c) * HW + p;
        const xh = (x[i]! - mean[c]!) * rstd;
        dx[i] = w[c]! * rstd * (dy[i]! - sdy / M - (xh * sdyxh) / M);
      }
  }
  return { dx, dw, db };
}

export function batchNormEval(
  x: Arr,
  w: Arr,
  b: Arr,
  rm: Arr,
  rv: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(N * C * HW);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < HW; p++) {
        const i = (n * C + c) * HW + p;
        y[i] = ((x[i]! - rm[c]!) / Math.sqrt(rv[c]! + eps)) * w[c]! + b[c]!;
      }
  return y;
}

export function batchNormEvalBackward(
  x: Arr,
  w: Arr,
  rm: Arr,
  rv: Arr,
  dy: Arr,
  N: number,
  C: number,
  HW: number,
  eps: number,
): NormGrads {
  const dx = new Float64Array(N * C * HW);
  const dw = new Float64Array(C);
  const db = new Float64Array(C);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const rstd = 1 / Math.sqrt(rv[c]! + eps);
      for (let p = 0; p < HW; p++) {
        const i = (n * C + c) * HW + p;
        dx[i] = dy[i]! * w[c]! * rstd;
        dw[c]! += dy[i]! * (x[i]! - rm[c]!) * rstd;
        db[c]! += dy[i]!;
      }
    }
  return { dx, dw, db };
}

/** sum(y * dy) — the scalar whose gradients the backward references give. */
export function dot(a: Arr, b: Arr): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
