/**
 * Float64 CPU reference of one torch.optim.AdamW step (single-tensor path, amsgrad off), written
 * from the PyTorch algorithm: decoupled decay, moments, bias corrections with the step count t.
 */
export interface AdamWRefState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t: number;
}

export function adamwRefStep(
  s: AdamWRefState,
  g: ArrayLike<number>,
  h: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
): void {
  s.t += 1;
  const bc1 = 1 - h.beta1 ** s.t;
  const bc2 = 1 - h.beta2 ** s.t;
  for (let i = 0; i < s.p.length; i++) {
    const gi = g[i]!;
    let p = s.p[i]! * (1 - h.lr * h.weightDecay);
    const m = h.beta1 * s.m[i]! + (1 - h.beta1) * gi;
    const v = h.beta2 * s.v[i]! + (1 - h.beta2) * gi * gi;
    p -= (h.lr * (m / bc1)) / (Math.sqrt(v / bc2) + h.eps);
    s.p[i] = p;
    s.m[i] = m;
    s.v[i] = v;
  }
}
