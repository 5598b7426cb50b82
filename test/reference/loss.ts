/**
 * Plain-loop float64 CPU reference for the SAM-LST loss (spec §10): (1-lambda)*CE + lambda*Dice,
 * written from the oracle's formulas (sam_lst_ref.py dice_loss / sam_lst_loss), independent of
 * the WGSL.
 */

export interface LossRef {
  total: number;
  ce: number;
  dice: number;
  /** d total / d logits, same layout as the logits (B, C, H, W). */
  dx: Float64Array;
}

/** Softmax over channels of logits (B, C, HW) as float64. */
function softmax(x: ArrayLike<number>, B: number, C: number, HW: number): Float64Array {
  const p = new Float64Array(B * C * HW);
  for (let b = 0; b < B; b++)
    for (let q = 0; q < HW; q++) {
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = Math.max(m, x[(b * C + c) * HW + q]!);
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.exp(x[(b * C + c) * HW + q]! - m);
      for (let c = 0; c < C; c++) p[(b * C + c) * HW + q] = Math.exp(x[(b * C + c) * HW + q]! - m) / s;
    }
  return p;
}

/** Loss value only (used for finite differences). */
export function lossValue(
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  shape: readonly number[],
  lambda = 0.8,
  smooth = 1e-5,
): { total: number; ce: number; dice: number } {
  const [B, C, H, W] = shape as [number, number, number, number];
  const HW = H * W;
  const p = softmax(x, B, C, HW);
  let ce = 0;
  for (let b = 0; b < B; b++)
    for (let q = 0; q < HW; q++) ce -= Math.log(p[(b * C + labels[b * HW + q]!) * HW + q]!);
  ce /= B * HW;
  let dice = 0;
  for (let c = 0; c < C; c++) {
    let inter = 0;
    let psq = 0;
    let tsq = 0;
    for (let b = 0; b < B; b++)
      for (let q = 0; q < HW; q++) {
        const pc = p[(b * C + c) * HW + q]!;
        const t = labels[b * HW + q] === c ? 1 : 0;
        inter += pc * t;
        psq += pc * pc;
        tsq += t * t;
      }
    dice += 1 - (2 * inter + smooth) / (psq + tsq + smooth);
  }
  dice /= C;
  return { total: (1 - lambda) * ce + lambda * dice, ce, dice };
}

/** Loss and its analytic gradient with respect to the logits (softmax Jacobian written out). */
export function lossWithGrad(
  x: ArrayLike<number>,
  labels: ArrayLike<number>,
  shape: readonly number[],
  lambda = 0.8,
  smooth = 1e-5,
): LossRef {
  const [B, C, H, W] = shape as [number, number, number, number];
  const HW = H * W;
  const N = B * HW;
  const p = softmax(x, B, C, HW);
  const v = lossValue(x, labels, shape, lambda, smooth);
  const inter = new Float64Array(C);
  const den = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let psq = 0;
    let tsq = 0;
    for (let b = 0; b < B; b++)
      for (let q = 0; q < HW; q++) {
        const pc = p[(b * C + c) * HW + q]!;
        const t = labels[b * HW + q] === c ? 1 : 0;
        inter[c]! += pc * t;
        psq += pc * pc;
        tsq += t;
      }
    den[c] = psq + tsq + smooth;
  }
  const dx = new Float64Array(B * C * HW);
  const dp = new Float64Array(C);
  for (let b = 0; b < B; b++)
    for (let q = 0; q < HW; q++) {
      const l = labels[b * HW + q]!;
      // dL/dp_k (Dice part): -(lambda/C) * dD_k/dp_k, D_k = (2 I_k + s) / den_k.
      for (let k = 0; k < C; k++) {
        const pk = p[(b * C + k) * HW + q]!;
        const t = l === k ? 1 : 0;
        const dD = (2 * t) / den[k]! - ((2 * inter[k]! + smooth) * 2 * pk) / (den[k]! * den[k]!);
        dp[k] = (-lambda / C) * dD;
      }
      // Through softmax: dx_c = sum_k dp_k * p_k (delta_kc - p_c); CE: (p_c - t_c) / N.
      let s = 0;
      for (let k = 0; k < C; k++) s += dp[k]! * p[(b * C + k) * HW + q]!;
      for (let c = 0; c < C; c++) {
        const pc = p[(b * C + c) * HW + q]!;
        const t = l === c ? 1 : 0;
        dx[(b * C + c) * HW + q] = ((1 - lambda) * (pc - t)) / N + pc * (dp[c]! - s);
      }
    }
  return { ...v, dx };
}
