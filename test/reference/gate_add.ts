/** Plain-loop float64 CPU reference for the sigmoid fusion gate (spec §5) and its gradients. */

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** y = g*a + (1-g)*b, g = sigmoid(alpha). */
export function gateForward(alpha: number, a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const g = sigmoid(alpha);
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = g * a[i]! + (1 - g) * b[i]!;
  return y;
}

/** Gradients of sum(y*dy) with respect to alpha, a and b. */
export function gateBackward(
  alpha: number,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dy: ArrayLike<number>,
): { dalpha: number; da: Float64Array; db: Float64Array } {
  const g = sigmoid(alpha);
  const da = new Float64Array(a.length);
  const db = new Float64Array(a.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    da[i] = g * dy[i]!;
    db[i] = (1 - g) * dy[i]!;
    s += dy[i]! * (a[i]! - b[i]!);
  }
  return { dalpha: g * (1 - g) * s, da, db };
}

/** sum(y*dy) as a function of alpha, for finite differences. */
export function gateObjective(
  alpha: number,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dy: ArrayLike<number>,
): number {
  const y = gateForward(alpha, a, b);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i]! * dy[i]!;
  return s;
}
